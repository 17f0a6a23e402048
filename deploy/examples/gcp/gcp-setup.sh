#!/bin/sh
# Google side of the GCP example: sample secrets (global and regional), the team's service account,
# and the IAM bindings that let pod shop/shop read them. Needs gcloud logged in as a project owner,
# and a GKE cluster with Workload Identity (workload pool shop-prod.svc.id.goog).
#   PROJECT=shop-prod PROJECT_NUMBER=123456789012 ./gcp-setup.sh
set -eu
PROJECT=${PROJECT:-shop-prod}
PROJECT_NUMBER=${PROJECT_NUMBER:-$(gcloud projects describe "$PROJECT" --format='value(projectNumber)')}
LOCATION=europe-west1
POD="principal://iam.googleapis.com/projects/$PROJECT_NUMBER/locations/global/workloadIdentityPools/$PROJECT.svc.id.goog/subject/ns/shop/sa/shop"
TEAM_SA="shop-secrets@$PROJECT.iam.gserviceaccount.com"

gcloud services enable secretmanager.googleapis.com iamcredentials.googleapis.com sts.googleapis.com --project "$PROJECT"

# Global secrets, read by the pod's own principal.
printf '{"username":"shop","password":"%s"}' "$(head -c 18 /dev/urandom | base64)" |
  gcloud secrets create shop-db --project "$PROJECT" --replication-policy=automatic --data-file=-
printf 'sk_live_example' | gcloud secrets create shop-stripe --project "$PROJECT" --replication-policy=automatic --data-file=-
for secret in shop-db shop-stripe; do
  gcloud secrets add-iam-policy-binding "$secret" --project "$PROJECT" \
    --role=roles/secretmanager.secretAccessor --member="$POD"
done

# A regional secret with an alias, read as the team's service account.
printf '{"checkout":"v2"}' | gcloud secrets create shop-flags --project "$PROJECT" --location "$LOCATION" --data-file=-
gcloud secrets update shop-flags --project "$PROJECT" --location "$LOCATION" --update-version-aliases=stable=1
gcloud iam service-accounts create shop-secrets --project "$PROJECT"
gcloud iam service-accounts add-iam-policy-binding "$TEAM_SA" --project "$PROJECT" \
  --role=roles/iam.workloadIdentityUser --member="$POD"
gcloud secrets add-iam-policy-binding shop-flags --project "$PROJECT" --location "$LOCATION" \
  --role=roles/secretmanager.secretAccessor --member="serviceAccount:$TEAM_SA"
