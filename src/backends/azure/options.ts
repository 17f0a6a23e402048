import { z } from 'zod';
import { duration } from '../../schema.js';
import { placeholderTemplate } from '../kit/placeholders.js';
import type { StoreSettings } from '../types.js';

/** What a cloud fixes: where Entra ID issues tokens, the vaults' DNS suffix and the token scope. */
export interface CloudPreset {
  readonly authorityHost: string;
  readonly vaultSuffix: string;
  readonly scope: string;
}

export const clouds: Readonly<Record<'public' | 'usgov' | 'china', CloudPreset>> = {
  public: { authorityHost: 'https://login.microsoftonline.com', vaultSuffix: 'vault.azure.net', scope: 'https://vault.azure.net/.default' },
  usgov: { authorityHost: 'https://login.microsoftonline.us', vaultSuffix: 'vault.usgovcloudapi.net', scope: 'https://vault.usgovcloudapi.net/.default' },
  china: { authorityHost: 'https://login.chinacloudapi.cn', vaultSuffix: 'vault.azure.cn', scope: 'https://vault.azure.cn/.default' },
};

const httpsUrl = z.url({ protocol: /^https$/, message: 'must be an https URL' });
/** Tenant ids are GUIDs or verified domains; both are DNS-safe. */
const tenant = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/, 'must be a tenant id (a GUID) or a tenant domain');
const clientId = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be an application (client) id, a GUID');

export const azureOptions = z.strictObject({
  vaultUrl: httpsUrl.optional().describe('The vault\'s URL, like `https://my-vault.vault.azure.net` (private endpoints, tests). Not with vaultName.'),
  vaultName: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$/, 'must be a Key Vault name: 3-24 letters, digits and dashes')
    .optional()
    .describe('The vault\'s name; its URL follows from cloud. Not with vaultUrl.'),
  cloud: z
    .enum(['public', 'usgov', 'china'])
    .default('public')
    .describe('Azure cloud: sets the authority host, the vault DNS suffix and the token scope.'),
  authorityHost: httpsUrl.optional().describe('Entra ID authority host, overriding the cloud\'s (private endpoints, tests).'),
  tenantId: tenant.describe('The Entra ID tenant of the application the pods federate with.'),
  clientId: clientId.optional().describe('Default application (client) id the pods act as; a class may name another through `role` where allowedClientIds allows it.'),
  allowedClientIds: z
    .array(placeholderTemplate)
    .min(1)
    .optional()
    .describe(
      'Client ids a class may name in its `role` parameter; `{namespace}` and `{serviceAccount}` are the pod\'s, `*` matches anything. Entra ID still checks the federation.',
    ),
  audience: z
    .string()
    .min(1)
    .default('api://AzureADTokenExchange')
    .describe('Audience of the pod token presented as the client assertion (the federated credential\'s audience).'),
  apiVersion: z
    .string()
    .regex(/^[0-9]{1,4}(\.[0-9]{1,2}|-[0-9]{2}-[0-9]{2}(-preview)?)$/, 'must be a Key Vault api-version like 7.5 or 2025-07-01')
    .default('7.5')
    .describe('Key Vault REST api-version.'),
  tls: z
    .strictObject({ caFile: z.string().min(1).optional().describe('CA bundle (PEM) to verify Entra ID and the vault with; the system CAs when absent.') })
    .optional()
    .describe('TLS settings. Verification is always on. Relative paths resolve against the config file.'),
  timeout: duration
    .refine((ms) => ms > 0, 'must be above zero')
    .default(10_000)
    .describe('Budget of one HTTP call to Entra ID or Key Vault.'),
});

export type AzureStoreOptions = z.infer<typeof azureOptions>;

export const azureObjectFields = z
  .strictObject({
    kind: z.enum(['secret', 'key', 'cert']).default('secret').describe('`secret` (default), `key` (the public key) or `cert` (the leaf certificate).'),
    format: z
      .enum(['pem', 'pfx', 'jwk', 'pem-pair'])
      .optional()
      .describe(
        'Certificate-backed secrets: `pem` (default; PKCS#8 key, then leaf, intermediates, root), `pfx` (the PFX bytes) or `pem-pair` (fields `crt` and `key`, for `expand: keys` or `key`). Keys: `pem` (SPKI, default) or `jwk`.',
      ),
  })
  .superRefine((spec, ctx) => {
    const allowed = { secret: ['pem', 'pfx', 'pem-pair'], key: ['pem', 'jwk'], cert: ['pem'] }[spec.kind];
    if (spec.format !== undefined && !allowed.includes(spec.format)) {
      ctx.addIssue({ code: 'custom', path: ['format'], message: `format "${spec.format}" does not apply to kind ${spec.kind} (use ${allowed.join(' or ')})` });
    }
  });

export type AzureObjectSpec = z.infer<typeof azureObjectFields>;

/** Where the store reads and logs in, with the cloud's defaults applied. */
export interface AzureEndpoints {
  readonly vaultUrl: string;
  readonly authorityHost: string;
  readonly scope: string;
}

export function endpointsOf(opts: AzureStoreOptions): AzureEndpoints {
  const cloud = clouds[opts.cloud];
  const vaultUrl = opts.vaultUrl ?? `https://${opts.vaultName ?? ''}.${cloud.vaultSuffix}`;
  return { vaultUrl: vaultUrl.replace(/\/+$/, ''), authorityHost: (opts.authorityHost ?? cloud.authorityHost).replace(/\/+$/, ''), scope: cloud.scope };
}

export function checkAzureStore({ options: opts }: StoreSettings<AzureStoreOptions>): string[] {
  const problems: string[] = [];
  if ((opts.vaultUrl === undefined) === (opts.vaultName === undefined)) problems.push('vaultUrl: set either vaultUrl or vaultName (with cloud)');
  if (opts.clientId === undefined && opts.allowedClientIds === undefined) {
    problems.push('clientId: set clientId, or allowedClientIds for classes that name their own in `role`');
  }
  return problems;
}
