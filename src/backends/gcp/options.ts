import { z } from 'zod';
import { duration } from '../../schema.js';
import { placeholderTemplate } from '../kit/placeholders.js';
import type { BackendDocs, StoreSettings } from '../types.js';

const httpsUrl = z.url({ protocol: /^https?$/, message: 'must be an http(s) base URL like https://sts.example.internal' });
const serviceAccountEmail = z
  .string()
  .regex(/^[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$/, 'must be a service account email like reader@project.iam.gserviceaccount.com');

const callBudget = duration
  .refine((ms) => ms > 0, 'must be above zero')
  .default(10_000)
  .describe('Budget of one call to Google (a token exchange, an impersonation or a read).');

/** The workload identity pool provider, or GKE's identity namespace. */
const audience = z
  .string()
  .regex(
    /^(\/\/iam\.googleapis\.com\/projects\/\d+\/locations\/global\/workloadIdentityPools\/[a-z0-9-]+\/providers\/[a-z0-9-]+|identitynamespace:[a-z0-9.:-]+\.svc\.id\.goog:https:\/\/\S+)$/,
    'must be //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER or identitynamespace:PROJECT.svc.id.goog:https://container.googleapis.com/v1/projects/P/locations/L/clusters/C',
  );

export const projectPattern = /^([a-z][a-z0-9.:-]{3,61}[a-z0-9]|\d{1,20})$/;
export const locationPattern = /^[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

export const gcpOptions = z.strictObject({
  project: z
    .string()
    .regex(projectPattern, 'must be a project id like "my-project" or a project number')
    .optional()
    .describe('Project of short refs (`S`); refs naming `projects/P/...` need none.'),
  location: z
    .string()
    .regex(locationPattern, 'must be a location like "europe-west1"')
    .optional()
    .describe('Location of short refs: they read regional secrets through `secretmanager.LOCATION.rep.googleapis.com`.'),
  audience: audience.describe(
    'The workload identity pool provider (`//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`), or on GKE `identitynamespace:PROJECT.svc.id.goog:https://container.googleapis.com/v1/projects/P/locations/L/clusters/C`.',
  ),
  tokenAudience: z
    .string()
    .min(1)
    .optional()
    .describe('Audience of the pod token exchanged at STS; default `audience` (GKE form: `PROJECT.svc.id.goog`).'),
  serviceAccount: placeholderTemplate
    .optional()
    .describe('Google service account to impersonate with the federated token (`{namespace}`, `{serviceAccount}` allowed); the federated principal reads directly when absent.'),
  serviceAccountPattern: z
    .string()
    .min(1)
    .optional()
    .describe('Service accounts an object may name in `serviceAccount`, e.g. `{namespace}-*@my-project.iam.gserviceaccount.com`; `*` matches anything. Objects may name none when absent.'),
  delegates: z
    .array(serviceAccountEmail)
    .max(10)
    .optional()
    .describe('Delegation chain of the impersonation: each account holds Token Creator on the next, the last on the target.'),
  endpoints: z
    .strictObject({
      sts: httpsUrl.optional().describe('Base URL of STS (default `https://sts.googleapis.com`).'),
      iamCredentials: httpsUrl.optional().describe('Base URL of IAM credentials (default `https://iamcredentials.googleapis.com`).'),
      secretManager: httpsUrl
        .optional()
        .describe('Base URL of Secret Manager for every read, global and regional (Private Service Connect); default the global or regional Google endpoint.'),
    })
    .optional()
    .describe('Endpoint overrides (Private Service Connect, proxies, tests).'),
  tls: z
    .strictObject({
      caFile: z.string().min(1).optional().describe('CA bundle (PEM) to verify the overridden `endpoints` with, instead of the system CAs.'),
    })
    .optional()
    .describe('TLS settings for overridden endpoints. Verification is always on. Relative paths resolve against the config file.'),
  timeout: callBudget,
});

export type GcpStoreOptions = z.infer<typeof gcpOptions>;

export const gcpObjectFields = z.strictObject({
  serviceAccount: serviceAccountEmail
    .optional()
    .describe('Google service account to impersonate for this object; the store\'s `serviceAccountPattern` must allow it.'),
});

export type GcpObjectSpec = z.infer<typeof gcpObjectFields>;

const gcpDocs: BackendDocs = {
  summary: 'Google Cloud Secret Manager (global and regional secrets), read as the pod through workload identity federation, optionally impersonating a service account; checksums verified.',
  guide: '[docs/gcp.md](gcp.md)',
  ref: '`SECRET` (the store\'s project and location), `projects/P/secrets/S` or `projects/P/locations/L/secrets/S`, optionally ending in `/versions/V`.',
};

/** GKE's pod tokens carry the identity namespace as their audience; other pools accept the provider's name. */
export function tokenAudienceOf(opts: Pick<GcpStoreOptions, 'audience' | 'tokenAudience'>): string {
  if (opts.tokenAudience !== undefined) return opts.tokenAudience;
  const gke = /^identitynamespace:([^:]+\.svc\.id\.goog):/.exec(opts.audience);
  return gke ? gke[1]! : opts.audience;
}

function checkGcpStore({ options: opts }: StoreSettings<GcpStoreOptions>): string[] {
  const problems: string[] = [];
  if (opts.delegates !== undefined && opts.serviceAccount === undefined && opts.serviceAccountPattern === undefined) {
    problems.push('delegates: apply to an impersonation; set serviceAccount or serviceAccountPattern');
  }
  const endpoints = opts.endpoints ?? {};
  if (opts.tls !== undefined && endpoints.sts === undefined && endpoints.iamCredentials === undefined && endpoints.secretManager === undefined) {
    problems.push('tls: applies to overridden endpoints only; Google\'s own are verified with the system CAs');
  }
  if (opts.location !== undefined && opts.project === undefined) {
    problems.push('location: applies to short refs, which also need project');
  }
  return problems;
}

/** Everything about the kind that parsing a config or a class needs; no client. */
export const gcpStatics = {
  options: gcpOptions,
  objectFields: gcpObjectFields,
  audiences: (opts: GcpStoreOptions): readonly string[] => [tokenAudienceOf(opts)],
  docs: gcpDocs,
  checkStore: checkGcpStore,
} as const;
