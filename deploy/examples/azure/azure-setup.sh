#!/bin/sh
# Azure side of the example, with the az CLI logged in as someone who may create identities and
# role assignments: a user-assigned managed identity federated with service account shop/shop,
# a vault using Azure RBAC, the read roles on it, and sample objects.
#   RESOURCE_GROUP=shop-rg LOCATION=westeurope VAULT=kv-shop-example CLUSTER=my-aks ./azure-setup.sh
set -eu
: "${RESOURCE_GROUP:?}" "${LOCATION:?}" "${VAULT:?}" "${CLUSTER:?}"
issuer=$(az aks show -g "$RESOURCE_GROUP" -n "$CLUSTER" --query oidcIssuerProfile.issuerUrl -o tsv)
az identity create -g "$RESOURCE_GROUP" -n shop-secrets -l "$LOCATION" -o none
client_id=$(az identity show -g "$RESOURCE_GROUP" -n shop-secrets --query clientId -o tsv)
principal_id=$(az identity show -g "$RESOURCE_GROUP" -n shop-secrets --query principalId -o tsv)
# Entra ID compares issuer, subject and audience exactly with the pod's token.
az identity federated-credential create -g "$RESOURCE_GROUP" --identity-name shop-secrets -n shop-shop \
  --issuer "$issuer" --subject system:serviceaccount:shop:shop --audiences api://AzureADTokenExchange -o none
az keyvault create -g "$RESOURCE_GROUP" -n "$VAULT" -l "$LOCATION" --enable-rbac-authorization true -o none
vault_id=$(az keyvault show -n "$VAULT" --query id -o tsv)
# Secrets User reads secret values (certificate-backed secrets included); Certificate User and
# Crypto User read certificates and public keys.
for role in "Key Vault Secrets User" "Key Vault Certificate User" "Key Vault Crypto User"; do
  az role assignment create --assignee-object-id "$principal_id" --assignee-principal-type ServicePrincipal --role "$role" --scope "$vault_id" -o none
done
az keyvault secret set --vault-name "$VAULT" -n shop-db-password --value "change-me" -o none
az keyvault certificate create --vault-name "$VAULT" -n shop-web-tls -p "$(az keyvault certificate get-default-policy)" -o none
az keyvault key create --vault-name "$VAULT" -n shop-signing --kty EC --curve P-256 -o none
echo "set clientId: $client_id and tenantId: $(az account show --query tenantId -o tsv) in provider-config.yaml"
