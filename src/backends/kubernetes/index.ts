import type { Logger } from 'pino';
import { z } from 'zod';
import { ProviderError } from '../../errors.js';
import { duration } from '../../schema.js';
import type { BackendDefinition, FetchResult, StoreBackend } from '../types.js';
import { getJsonObject } from './call.js';
import { createApiClient, type ApiClient } from './client.js';
import { describeTarget, type CallScope, type ObjectKind, type Target } from './errors.js';
import { listObjects } from './list.js';
import { toFetchResult } from './objects.js';

const options = z
  .strictObject({
    identity: z
      .enum(['pod', 'provider'])
      .default('pod')
      .describe(
        '`pod` reads with the pod\'s own token (its RBAC applies); `provider` with the provider\'s own credentials, which needs access rules that restrict namespaces.',
      ),
    audience: z.string().default('').describe('Audience of the pod token to present; `""` is the API server\'s own.'),
    kubeconfig: z
      .string()
      .min(1)
      .optional()
      .describe('A kubeconfig file for a remote cluster (or a laptop); the in-cluster config when absent.'),
    context: z.string().min(1).optional().describe('The kubeconfig context to use instead of its current-context (needs kubeconfig).'),
    timeout: duration
      .refine((ms) => ms > 0, 'must be above zero')
      .default(10_000)
      .describe('Budget of one read.'),
  });

type Options = z.infer<typeof options>;

export const kubernetesObjectFields = z.strictObject({
  kind: z.enum(['secret', 'configmap']).default('secret').describe('Read a Secret or a ConfigMap.'),
});

type Spec = z.infer<typeof kubernetesObjectFields>;

/** Reads Secrets and ConfigMaps from a Kubernetes API server, as the pod (its RBAC decides) or as the provider. */
export const kubernetesBackend: BackendDefinition<Options, Spec> = {
  kind: 'kubernetes',
  options,
  objectFields: kubernetesObjectFields,
  audiences: (opts) => (opts.identity === 'pod' ? [opts.audience] : []),
  docs: {
    summary: 'Secrets and ConfigMaps of a Kubernetes API server, read with the pod\'s own token (its RBAC decides) or the provider\'s.',
    guide: '[docs/kubernetes.md](kubernetes.md)',
    ref: '`NAME` (in the pod\'s namespace) or `NAMESPACE/NAME`.',
  },
  checkStore({ options: opts, restrictsNamespaces }) {
    const problems: string[] = [];
    if (opts.context !== undefined && opts.kubeconfig === undefined) problems.push('context: context needs kubeconfig');
    if (opts.identity === 'provider' && !restrictsNamespaces) {
      problems.push('identity: "provider" reads with the provider\'s own rights, so the store needs access rules that restrict namespaces');
    }
    return problems;
  },
  async preflight({ options: opts }, { baseDir }) {
    // The kubeconfig (or the in-cluster files), its context, cluster URL and TLS files: what a
    // store needs is checked at start; only the connection waits for the first Mount.
    (await createApiClient(opts, baseDir)).close();
  },
  async create({ name, options: opts }, { baseDir, logger }) {
    const client = await createApiClient(opts, baseDir);
    logger.debug(
      { server: client.origin, identity: opts.identity, source: opts.kubeconfig === undefined ? 'in-cluster' : 'kubeconfig', context: opts.context },
      'Kubernetes store ready',
    );
    return createStore(name, opts, client, logger);
  },
};

function createStore(name: string, opts: Options, client: ApiClient, logger: Logger): StoreBackend<Spec> {
  return {
    name,
    async fetch({ ref, version, spec }, ctx) {
      if (version !== undefined) {
        throw new ProviderError('InvalidArgument', 'the kubernetes store serves only the current object; remove version');
      }
      const target = parseRef(ref, spec.kind, ctx.identity.namespace);
      // The token is checked before any request so that a missing or expired one never reaches the server.
      const authorization = opts.identity === 'pod' ? `Bearer ${ctx.tokenFor(opts.audience)}` : undefined;
      const scope: CallScope = {
        target,
        ctx,
        identity: opts.identity,
        audience: opts.audience,
        timeoutMs: opts.timeout,
        storeName: name,
        logger,
      };
      return readOnce(client, authorization, scope);
    },
    async list(request, ctx) {
      const authorization = opts.identity === 'pod' ? `Bearer ${ctx.tokenFor(opts.audience)}` : undefined;
      return listObjects(request, { client, authorization, ctx, identity: opts.identity, audience: opts.audience, timeoutMs: opts.timeout, storeName: name, logger });
    },
    async close() {
      client.close();
    },
  };
}

/** One attempt; a failure is classified (a TLS verification failure is not worth retrying) and logged at debug. */
async function readOnce(client: ApiClient, authorization: string | undefined, scope: CallScope): Promise<FetchResult> {
  const started = performance.now();
  const log = { object: describeTarget(scope.target), identity: scope.identity };
  try {
    const result = toFetchResult(scope.target.kind, await getJsonObject(client, new URLSearchParams(), authorization, scope));
    scope.logger.debug({ ...log, resourceVersion: result.version, ms: Math.round(performance.now() - started) }, 'read a Kubernetes object');
    return result;
  } catch (err) {
    const failure = err as ProviderError;
    scope.logger.debug(
      { ...log, code: failure.code, transient: failure.transient, ms: Math.round(performance.now() - started), cause: failure.message },
      'reading a Kubernetes object failed',
    );
    throw failure;
  }
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && value.split('.').every((label) => dnsLabel.test(label));
}

/** `NAME` (the pod's namespace) or `NAMESPACE/NAME`. */
function parseRef(ref: string, kind: ObjectKind, podNamespace: string): Target & { name: string } {
  const parts = ref.split('/');
  const [namespace, name] = parts.length === 1 ? [podNamespace, parts[0]!] : [parts[0]!, parts[1] ?? ''];
  if (parts.length > 2 || !dnsLabel.test(namespace) || !isDnsSubdomain(name)) {
    throw new ProviderError(
      'InvalidArgument',
      'ref must be NAME or NAMESPACE/NAME, with a DNS-1123 label as namespace and a DNS-1123 subdomain as name',
    );
  }
  return { kind, namespace, name };
}

