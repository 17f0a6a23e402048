import type { BackendDefinition } from '../types.js';
import { awsDocs, parameterStoreObjectFields, secretsManagerObjectFields, type ParameterStoreObjectSpec, type SecretsManagerObjectSpec } from './fields.js';
import { awsAudiences, awsStoreOptions, checkAwsStore, type AwsStoreOptions } from './options.js';
import { createParameterStore, createSecretsManagerStore } from './runtime.js';

export { awsStoreOptions, checkAwsStore, type AwsStoreOptions } from './options.js';
export { parameterStoreObjectFields, secretsManagerObjectFields, type ParameterStoreObjectSpec, type SecretsManagerObjectSpec };

/** What both AWS kinds share; the SDK, its credential providers and its error rules load with the first store. */
const awsKind = { options: awsStoreOptions, audiences: awsAudiences, checkStore: checkAwsStore } as const;

export const awsSecretsManagerBackend: BackendDefinition<AwsStoreOptions, SecretsManagerObjectSpec> = {
  kind: 'aws-secrets-manager',
  ...awsKind,
  objectFields: secretsManagerObjectFields,
  docs: awsDocs('AWS Secrets Manager', 'A secret name or ARN.'),
  create: createSecretsManagerStore,
};

export const awsParameterStoreBackend: BackendDefinition<AwsStoreOptions, ParameterStoreObjectSpec> = {
  kind: 'aws-parameter-store',
  ...awsKind,
  objectFields: parameterStoreObjectFields,
  docs: awsDocs(
    'AWS Systems Manager Parameter Store',
    'A parameter name or ARN, with an optional `:version` or `:label`; a path ending in `/` reads every parameter under it.',
  ),
  create: createParameterStore,
};
