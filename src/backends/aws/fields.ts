import { z } from 'zod';
import type { BackendDocs } from '../types.js';

/** The static parts of the two AWS kinds: what parsing a config or a class needs, and no SDK. */

export const secretsManagerObjectFields = z.strictObject({
  versionStage: z
    .string()
    .min(1)
    .max(256)
    .optional()
    .describe('Staging label to read (`AWSCURRENT` when neither it nor `version` is set).'),
});

export type SecretsManagerObjectSpec = z.infer<typeof secretsManagerObjectFields>;

export const parameterStoreObjectFields = z.strictObject({
  recursive: z
    .boolean()
    .default(false)
    .describe('For a path ref (ending in `/`): include parameters in nested paths too.'),
});

export type ParameterStoreObjectSpec = z.infer<typeof parameterStoreObjectFields>;

export function awsDocs(service: string, ref: string): BackendDocs {
  return { summary: `${service}, read as the pod through IRSA or EKS Pod Identity, with an optional failover region.`, guide: '[docs/aws.md](aws.md)', ref };
}
