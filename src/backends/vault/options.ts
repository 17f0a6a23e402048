import { z } from 'zod';
import { placeholderTemplate } from '../kit/placeholders.js';
import { duration } from '../../schema.js';
import type { BackendDocs, StoreSettings } from '../types.js';

function loginAuth<M extends 'kubernetes' | 'jwt'>(method: M) {
  return z.strictObject({
    method: z.literal(method).describe(`Log in with the pod's token to Vault's ${method} auth method.`),
    mount: z
      .string()
      .regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'must be a mount path like "kubernetes" or "clusters/prod"')
      .optional()
      .describe('Auth mount path (`kubernetes`, `clusters/prod`); default: the method name.'),
    audience: z
      .string()
      .default('vault')
      .describe('Audience of the pod token presented at login (the Vault role\'s `audience`).'),
    role: z.string().min(1).optional().describe('Default role when the class names none.'),
    roleTemplate: placeholderTemplate
      .optional()
      .describe(
        'Derives the role from the pod (`{namespace}-{serviceAccount}`); a class naming another role is refused. A fixed string pins one role. Not with role.',
      ),
  });
}

const auth = z.discriminatedUnion('method', [
  loginAuth('kubernetes'),
  loginAuth('jwt'),
  z.strictObject({
    method: z.literal('token').describe('A Vault token from the volume\'s nodePublishSecretRef key `token`.'),
    allowTokenFromSecret: z
      .boolean()
      .default(false)
      .describe('Must be true for token auth: it trades the pod\'s identity for a shared credential.'),
  }),
]);

const tls = z
  .strictObject({
    caFile: z.string().min(1).optional().describe('CA bundle (PEM) to verify Vault with; the system CAs when absent.'),
    serverName: z.string().min(1).optional().describe('Name to verify in Vault\'s certificate, when it differs from the address.'),
    certFile: z.string().min(1).optional().describe('Client certificate (PEM); goes with keyFile.'),
    keyFile: z.string().min(1).optional().describe('Client certificate key (PEM); goes with certFile.'),
  })
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), {
    message: 'certFile and keyFile go together',
    path: ['certFile'],
  });

export const vaultOptions = z.strictObject({
  address: z
    .url({ protocol: /^https?$/, message: 'must be an http(s) URL like https://vault.vault.svc:8200' })
    .describe('Vault\'s address, like `https://vault.vault.svc:8200`.'),
  namespace: z.string().min(1).optional().describe('Vault Enterprise namespace, sent as X-Vault-Namespace.'),
  tls: tls.optional().describe('TLS settings (https addresses only). Verification is always on. Relative paths resolve against the config file.'),
  auth: auth.describe('How pods log in to Vault.'),
  kvVersion: z
    .union([z.literal('auto'), z.literal(1), z.literal(2)])
    .default('auto')
    .describe('KV engine version; `auto` asks Vault per mount (cached). A fixed version treats every GET as KV.'),
  timeout: duration.default(10_000).describe('Time limit of one HTTP call to Vault.'),
});

export type VaultStoreOptions = z.infer<typeof vaultOptions>;
export type LoginAuthOptions = Exclude<VaultStoreOptions['auth'], { method: 'token' }>;

export const vaultObjectFields = z
  .strictObject({
    method: z.enum(['GET', 'POST', 'PUT']).default('GET').describe('HTTP method of the read; POST or PUT for dynamic secrets like pki/issue.'),
    args: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('JSON body of a POST or PUT (e.g. `{common_name: ...}` for pki/issue); needs method POST or PUT.'),
  })
  .refine((s) => s.args === undefined || s.method !== 'GET', {
    message: 'args are sent as the JSON body and need method POST or PUT',
    path: ['args'],
  });

export type VaultObjectSpec = z.infer<typeof vaultObjectFields>;

export const vaultDocs: BackendDocs = {
  summary: 'HashiCorp Vault (KV v1 and v2, dynamic secrets), logging in as the pod with its Kubernetes or JWT auth method.',
  guide: '[docs/vault.md](vault.md)',
  ref: 'A Vault path: `secret/data/app` (KV v2, `data/` may be left out), `database/creds/role`.',
};

/** The pod-token audience a login presents; token auth acts with the token it is given. */
export function vaultAudiences(opts: VaultStoreOptions): readonly string[] {
  return opts.auth.method === 'token' ? [] : [opts.auth.audience];
}

/** Rules across fields, as `field: message`. */
export function checkVaultStore({ options: opts }: StoreSettings<VaultStoreOptions>): string[] {
  const problems: string[] = [];
  if (opts.auth.method === 'token' && !opts.auth.allowTokenFromSecret) {
    problems.push('auth.allowTokenFromSecret: token auth reads the token from nodePublishSecretRef; set it to true to allow that');
  }
  if (opts.auth.method !== 'token' && opts.auth.role !== undefined && opts.auth.roleTemplate !== undefined) {
    problems.push('auth.roleTemplate: set either role (a default the class may override) or roleTemplate, not both');
  }
  if (opts.tls !== undefined && !opts.address.startsWith('https:')) {
    problems.push('tls: applies only to an https address');
  }
  return problems;
}
