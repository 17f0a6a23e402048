#!/usr/bin/env bash
# End-to-end check on a throwaway kind cluster: the real Secrets Store CSI Driver, our image, the
# file and kubernetes examples, and a Secret synced from secretObjects.
#
# Prerequisites (see test/e2e/README.md): a running Docker engine, kind, kubectl, helm 3, and
# network access to pull the kind node image, the driver chart and busybox.
#
#   test/e2e/kind.sh                         # create, check, delete
#   USP_E2E_KEEP=1 test/e2e/kind.sh          # keep the cluster afterwards for a look around
#
# Environment:
#   USP_E2E_CLUSTER        cluster name (default usp-e2e)
#   USP_E2E_KEEP           1: do not delete the cluster at the end
#   USP_E2E_NODE_IMAGE     kind node image (default: kind's own)
#   USP_E2E_DRIVER_CHART_VERSION   pin the driver chart (default: the latest)
#   USP_E2E_TIMEOUT        seconds to wait for each pod or rollout (default 180)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

cluster="${USP_E2E_CLUSTER:-usp-e2e}"
keep="${USP_E2E_KEEP:-0}"
timeout="${USP_E2E_TIMEOUT:-180}"
context="kind-${cluster}"
failures=0

log() { printf '\n=== %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  failures=$((failures + 1))
}
kc() { kubectl --context "$context" "$@"; }

require() {
  local tool
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      printf 'missing prerequisite: %s (see test/e2e/README.md)\n' "$tool" >&2
      exit 2
    fi
  done
}

diagnostics() {
  log "diagnostics"
  kc get pods -A -o wide || true
  kc -n usp-system logs -l app.kubernetes.io/name=universal-secrets-provider --tail=50 || true
  kc -n kube-system logs -l app=secrets-store-csi-driver -c secrets-store --tail=50 || true
  kc -n shop get events --sort-by=.lastTimestamp || true
}

cleanup() {
  local status=$?
  if [[ $status -ne 0 || $failures -ne 0 ]]; then diagnostics; fi
  if [[ "$keep" == "1" ]]; then
    printf '\nkeeping cluster %s (kubectl --context %s); delete it with: kind delete cluster --name %s\n' "$cluster" "$context" "$cluster"
  else
    log "deleting cluster $cluster"
    kind delete cluster --name "$cluster" || true
  fi
  exit "$status"
}

# expect_file POD PATH EXPECTED: the file in the pod's mount holds exactly EXPECTED.
expect_file() {
  local pod="$1" path="$2" expected="$3" actual
  if ! actual="$(kc -n shop exec "$pod" -- cat "$path")"; then
    fail "$pod: cannot read $path"
    return
  fi
  if [[ "$actual" == "$expected" ]]; then
    printf 'ok: %s:%s\n' "$pod" "$path"
  else
    fail "$pod: $path holds ${#actual} bytes, not the expected ${#expected}"
  fi
}

# expect_contains POD PATH TEXT: the file contains TEXT.
expect_contains() {
  local pod="$1" path="$2" text="$3" actual
  if actual="$(kc -n shop exec "$pod" -- cat "$path")" && [[ "$actual" == *"$text"* ]]; then
    printf 'ok: %s:%s\n' "$pod" "$path"
  else
    fail "$pod: $path does not contain the expected text"
  fi
}

# expect_absent POD PATH: the file is not in the mount (an optional object the store lacks).
expect_absent() {
  local pod="$1" path="$2"
  if kc -n shop exec "$pod" -- test -e "$path"; then
    fail "$pod: $path should not exist"
  else
    printf 'ok: %s:%s absent\n' "$pod" "$path"
  fi
}

wait_pod() {
  kc -n shop wait --for=condition=Ready "pod/$1" --timeout="${timeout}s"
}

rollout_provider() {
  kc -n usp-system rollout restart daemonset/universal-secrets-provider
  kc -n usp-system rollout status daemonset/universal-secrets-provider --timeout="${timeout}s"
}

require docker kind kubectl helm
if ! docker info >/dev/null 2>&1; then
  printf 'the Docker engine is not reachable (docker info failed): start it first\n' >&2
  exit 2
fi

# The image the manifests reference (name and tag from deploy/base), built and loaded under that
# name so that no registry is involved (imagePullPolicy IfNotPresent finds it on the node).
image="$(kubectl kustomize deploy/base | awk '$1 == "image:" { print $2; exit }')"
if [[ -z "$image" ]]; then
  printf 'could not find the image in deploy/base\n' >&2
  exit 2
fi

log "creating kind cluster $cluster"
trap cleanup EXIT
create_args=(create cluster --name "$cluster" --wait 120s)
if [[ -n "${USP_E2E_NODE_IMAGE:-}" ]]; then create_args+=(--image "$USP_E2E_NODE_IMAGE"); fi
kind "${create_args[@]}"

log "building $image"
docker build -t "$image" --build-arg VERSION=e2e --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
kind load docker-image "$image" --name "$cluster"

log "installing the Secrets Store CSI Driver (test/e2e/driver-values.yaml)"
helm repo add secrets-store-csi-driver https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts >/dev/null
helm repo update secrets-store-csi-driver >/dev/null
chart_args=(upgrade --install csi-secrets-store secrets-store-csi-driver/secrets-store-csi-driver
  --kube-context "$context" --namespace kube-system -f test/e2e/driver-values.yaml --wait --timeout "${timeout}s")
if [[ -n "${USP_E2E_DRIVER_CHART_VERSION:-}" ]]; then chart_args+=(--version "$USP_E2E_DRIVER_CHART_VERSION"); fi
helm "${chart_args[@]}"
kc get csidriver secrets-store.csi.k8s.io -o jsonpath='{.spec.tokenRequests}{"\n"}'

log "file store example (deploy/examples/file)"
kc apply -k deploy/examples/file
kc -n usp-system rollout status daemonset/universal-secrets-provider --timeout="${timeout}s"
kc apply -f deploy/examples/file/pod.yaml -f deploy/examples/file/secretproviderclass.yaml
wait_pod shop-files
expect_file shop-files /mnt/secrets/db/password example-db-password
expect_file shop-files /mnt/secrets/api-token example-token
expect_file shop-files /mnt/secrets/api/endpoint https://api.example.com
expect_file shop-files /mnt/secrets/api/token example-token
expect_contains shop-files /mnt/secrets/ca.crt 'BEGIN CERTIFICATE'
expect_absent shop-files /mnt/secrets/extra.conf

log "kubernetes store example (deploy/examples/kubernetes)"
kc apply -f deploy/examples/kubernetes/namespaces.yaml
kc apply -k deploy/examples/kubernetes
# The new config would be reloaded once the kubelet refreshes the ConfigMap volume (up to a
# minute); a restart makes the run deterministic.
rollout_provider
kc apply -f deploy/examples/kubernetes/secrets.yaml -f deploy/examples/kubernetes/rbac.yaml
kc apply -f deploy/examples/kubernetes/secretproviderclass.yaml -f deploy/examples/kubernetes/pod.yaml
wait_pod shop-cluster
expect_file shop-cluster /mnt/secrets/db/username shop
expect_file shop-cluster /mnt/secrets/db/password example-db-password
expect_contains shop-cluster /mnt/secrets/tls/tls.crt 'BEGIN CERTIFICATE'
expect_contains shop-cluster /mnt/secrets/settings.json '"currency":"EUR"'
expect_contains shop-cluster /mnt/secrets/ca.pem 'BEGIN CERTIFICATE'

log "secretObjects sync (test/e2e/manifests/sync.yaml)"
kc apply -f test/e2e/manifests/sync.yaml
wait_pod shop-sync
expect_file shop-sync /mnt/secrets/db/password example-db-password
synced=""
for _ in $(seq 1 30); do
  if synced="$(kc -n shop get secret shop-db-synced -o jsonpath='{.data.password}' 2>/dev/null)" && [[ -n "$synced" ]]; then break; fi
  sleep 2
done
if [[ "$(printf '%s' "$synced" | base64 -d)" == "example-db-password" ]]; then
  printf 'ok: Secret shop/shop-db-synced\n'
else
  fail "Secret shop/shop-db-synced missing or wrong"
fi
managed="$(kc -n shop get secret shop-db-synced -o jsonpath='{.metadata.labels.secrets-store\.csi\.k8s\.io/managed}' 2>/dev/null || true)"
if [[ "$managed" == "true" ]]; then printf 'ok: synced Secret carries the driver label\n'; else fail "synced Secret lacks secrets-store.csi.k8s.io/managed=true"; fi
if [[ "$(kc -n shop exec shop-sync -- printenv DB_PASSWORD)" == "example-db-password" ]]; then
  printf 'ok: env var from the synced Secret\n'
else
  fail "DB_PASSWORD from the synced Secret is wrong"
fi

log "provider metrics"
pod="$(kc -n usp-system get pod -l app.kubernetes.io/name=universal-secrets-provider -o name | head -n 1)"
if kc -n usp-system exec "$pod" -- node -e \
  'fetch("http://127.0.0.1:8095/metrics").then(r=>r.text()).then(t=>process.exit(/usp_mount_requests_total\{[^}]*outcome="ok"/.test(t)?0:1))'; then
  printf 'ok: /metrics counts successful Mounts\n'
else
  fail "no successful Mount in the provider's metrics"
fi

if [[ $failures -ne 0 ]]; then
  printf '\n%d check(s) failed\n' "$failures" >&2
  exit 1
fi
printf '\nall end-to-end checks passed\n'
