import type { BackendDeps, StoreSettings } from '../types.js';
import type { AwsStoreOptions } from './options.js';
import { ParameterStore } from './parameter-store.js';
import { SecretsManagerStore } from './secrets-manager.js';
import { createAwsStore } from './store.js';

/**
 * The AWS stores. The SDK clients, credential providers and error classification are imported
 * when the first store of an AWS kind is created, so a provider that configures none never loads
 * them. (Our own code stays in the main bundle: a lazily imported chunk of it would split shared
 * modules into a chunk of their own, which measured 7 MiB more idle RSS.)
 */
export function createSecretsManagerStore(settings: StoreSettings<AwsStoreOptions>, deps: BackendDeps) {
  return createAwsStore('aws-secrets-manager', settings, deps, () => import('@aws-sdk/client-secrets-manager'), (sdk, parts) => new SecretsManagerStore(sdk, parts));
}

export function createParameterStore(settings: StoreSettings<AwsStoreOptions>, deps: BackendDeps) {
  return createAwsStore('aws-parameter-store', settings, deps, () => import('@aws-sdk/client-ssm'), (sdk, parts) => new ParameterStore(sdk, parts));
}
