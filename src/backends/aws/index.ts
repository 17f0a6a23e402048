import type { BackendDefinition } from '../types.js';
import type { AwsStoreOptions } from './options.js';
import { ParameterStore, parameterStoreObjectFields, type ParameterStoreObjectSpec } from './parameter-store.js';
import { SecretsManagerStore, secretsManagerObjectFields, type SecretsManagerObjectSpec } from './secrets-manager.js';
import { awsDocs, defineAwsBackend } from './store.js';

export { awsStoreOptions, checkAwsStore, type AwsStoreOptions } from './options.js';
export { sessionNameFor } from './credentials.js';
export { parameterStoreObjectFields, secretsManagerObjectFields, type ParameterStoreObjectSpec, type SecretsManagerObjectSpec };

/** The AWS kinds; each loads its service's SDK only when a store of it exists. */
export const awsSecretsManagerBackend: BackendDefinition<AwsStoreOptions, SecretsManagerObjectSpec> = defineAwsBackend(
  'aws-secrets-manager',
  secretsManagerObjectFields,
  awsDocs('AWS Secrets Manager', 'A secret name or ARN.'),
  () => import('@aws-sdk/client-secrets-manager'),
  (sdk, parts) => new SecretsManagerStore(sdk, parts),
);

const parameterRef = 'A parameter name or ARN, with an optional `:version` or `:label`; a path ending in `/` reads every parameter under it.';

export const awsParameterStoreBackend: BackendDefinition<AwsStoreOptions, ParameterStoreObjectSpec> = defineAwsBackend(
  'aws-parameter-store',
  parameterStoreObjectFields,
  awsDocs('AWS Systems Manager Parameter Store', parameterRef),
  () => import('@aws-sdk/client-ssm'),
  (sdk, parts) => new ParameterStore(sdk, parts),
);
