#!/usr/bin/env bash
# Vault side of the example: Kubernetes auth, a policy and a role for service account shop/shop,
# sample KV secrets, a PKI role and (when a database is given) a database role.
# Run with a Vault admin token: VAULT_ADDR=https://... VAULT_TOKEN=... ./vault-setup.sh
# Optional: DB_CONNECTION_URL (e.g. postgresql://{{username}}:{{password}}@postgres.shop.svc:5432/shop),
# DB_ADMIN_USER and DB_ADMIN_PASSWORD to set up database/creds/shop.
set -euo pipefail

: "${VAULT_ADDR:?set VAULT_ADDR to the Vault address}"
K8S_HOST="${K8S_HOST:-https://kubernetes.default.svc}"
APP_NAMESPACE="${APP_NAMESPACE:-shop}"
APP_SERVICE_ACCOUNT="${APP_SERVICE_ACCOUNT:-shop}"
ROLE="${ROLE:-shop}"

enabled() {
  # $1: "auth" or "secrets"; $2: mount path with trailing slash
  vault "$1" list -format=json | grep -q "\"$2\""
}

# --- Kubernetes auth --------------------------------------------------------------------------
enabled auth kubernetes/ || vault auth enable kubernetes
# Inside the cluster Vault reviews tokens with its own service account (which needs the
# system:auth-delegator ClusterRole). Outside it, add token_reviewer_jwt and kubernetes_ca_cert.
vault write auth/kubernetes/config kubernetes_host="$K8S_HOST"

# --- secrets engines and sample data ------------------------------------------------------------
enabled secrets secret/ || vault secrets enable -path=secret -version=2 kv
vault kv put -mount=secret "$APP_NAMESPACE/db" password="$(openssl rand -base64 24)"
# Nested data comes from a JSON file ("@file"); key=value pairs can only write flat strings.
stripe_json="$(mktemp)"
trap 'rm -f "$stripe_json"' EXIT
printf '{"keys": {"live": "sk_live_%s", "test": "sk_test_%s"}}\n' "$(openssl rand -hex 12)" "$(openssl rand -hex 12)" >"$stripe_json"
vault kv put -mount=secret "$APP_NAMESPACE/stripe" @"$stripe_json"

if ! enabled secrets pki/; then
  vault secrets enable pki
  vault secrets tune -max-lease-ttl=87600h pki
  vault write -field=serial_number pki/root/generate/internal common_name="$APP_NAMESPACE.svc" ttl=87600h
fi
vault write "pki/roles/$ROLE" allowed_domains="$APP_NAMESPACE.svc" allow_subdomains=true max_ttl=72h

DATABASE=false
if [[ -n "${DB_CONNECTION_URL:-}" ]]; then
  DATABASE=true
  enabled secrets database/ || vault secrets enable database
  vault write "database/config/$ROLE" \
    plugin_name=postgresql-database-plugin \
    allowed_roles="$ROLE" \
    connection_url="$DB_CONNECTION_URL" \
    username="${DB_ADMIN_USER:?set DB_ADMIN_USER}" \
    password="${DB_ADMIN_PASSWORD:?set DB_ADMIN_PASSWORD}"
  # {{name}}, {{password}} and {{expiration}} are filled in by Vault for each credential.
  vault write "database/roles/$ROLE" \
    db_name="$ROLE" \
    creation_statements='CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '\''{{password}}'\'' VALID UNTIL '\''{{expiration}}'\''; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";' \
    default_ttl=1h \
    max_ttl=24h
fi

# --- policy and role --------------------------------------------------------------------------
vault policy write "$ROLE" - <<HCL
path "secret/data/$APP_NAMESPACE/*" { capabilities = ["read"] }
path "pki/issue/$ROLE" { capabilities = ["update"] }
path "database/creds/$ROLE" { capabilities = ["read"] }
HCL

# audience=vault: only tokens the driver requested for the "vault" audience are accepted, so a
# token meant for the Kubernetes API (or another store) cannot log in here, and vice versa.
vault write "auth/kubernetes/role/$ROLE" \
  bound_service_account_names="$APP_SERVICE_ACCOUNT" \
  bound_service_account_namespaces="$APP_NAMESPACE" \
  audience=vault \
  token_policies="$ROLE" \
  token_ttl=1h \
  token_max_ttl=24h

echo "Vault is set up for role $ROLE (service account $APP_NAMESPACE/$APP_SERVICE_ACCOUNT)."
if [[ "$DATABASE" == false ]]; then
  echo "No DB_CONNECTION_URL: database/creds/$ROLE is not set up; remove the pg/* objects from secretproviderclass.yaml."
fi
