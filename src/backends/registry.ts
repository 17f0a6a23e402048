import { awsParameterStoreBackend, awsSecretsManagerBackend } from './aws/index.js';
import { azureKeyVaultBackend } from './azure/index.js';
import { fileBackend } from './file.js';
import { gcpSecretManagerBackend } from './gcp/index.js';
import { kubernetesBackend } from './kubernetes/index.js';
import { vaultBackend } from './vault/index.js';
import type { BackendDefinition } from './types.js';

/**
 * Every backend kind, one line each. The config schema, `usp schema`, the reference docs and the
 * messages that list the kinds are derived from this list. A store's client and SDK load with its first Mount (`create`), not at start.
 */
export const backendDefinitions: readonly BackendDefinition[] = [
  fileBackend,
  kubernetesBackend,
  vaultBackend,
  awsSecretsManagerBackend,
  awsParameterStoreBackend,
  azureKeyVaultBackend,
  gcpSecretManagerBackend,
];

export function findBackend(kind: string): BackendDefinition | undefined {
  return backendDefinitions.find((b) => b.kind === kind);
}

export function backendKinds(): string[] {
  return backendDefinitions.map((b) => b.kind);
}
