import { driverRequest, type DriverClient } from '../test/helpers/driver-client.js';
import { serviceAccountUser, type KubernetesTestServer } from '../test/servers/kubernetes.js';

export interface FindBenchOptions {
  /** A kubernetes store of the bench config with a cache TTL longer than the run (bench/run.ts: `amp`). */
  readonly store: string;
  readonly namespace?: string;
  /** An identity no other row uses, so the first Mount meets a cold cache. */
  readonly serviceAccount?: string;
  readonly mounts?: number;
  readonly secrets?: number;
}

export interface FindBenchRow {
  readonly mounts: number;
  readonly secrets: number;
  /** LIST calls (pages) the API server saw: one per identity per TTL is the target. */
  readonly listCalls: number;
  /** Single-object reads: none, since a Kubernetes listing carries the values. */
  readonly readCalls: number;
  readonly filesPerMount: number;
}

/**
 * The bench row of issue #15: `mounts` concurrent Mounts by one identity of a `find` over
 * `secrets` Secrets, counting the API server's calls. Seeds its own Secrets and RBAC `list`.
 *
 *   const find = await measureFind(client, api, { store: 'amp' });
 */
export async function measureFind(client: DriverClient, api: KubernetesTestServer, options: FindBenchOptions): Promise<FindBenchRow> {
  const { store, namespace = 'bench', serviceAccount = 'find-bench', mounts = 100, secrets = 50 } = options;
  for (let i = 0; i < secrets; i++) api.putSecret({ namespace, name: `found-${i}`, data: { v: `value-${i}` }, labels: { bench: 'find' } });
  api.allow({ subject: serviceAccountUser(namespace, serviceAccount), namespace, resource: 'secrets', verbs: ['list'] });
  const { token, expiresAt } = api.issueToken({ namespace, serviceAccount, expiresInSeconds: 3600 });
  const pod = { namespace, serviceAccount, tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } } };
  const objects = `- {name: found, store: ${store}, find: {prefix: found-, labels: {bench: find}}, key: v}`;
  const before = api.requests.length;
  const replies = await Promise.all(Array.from({ length: mounts }, (_, i) => client.mount(driverRequest(objects, { ...pod, podName: `find-${i}` }))));
  const calls = api.requests.slice(before);
  return {
    mounts,
    secrets,
    listCalls: calls.filter((r) => r.path === `/api/v1/namespaces/${namespace}/secrets`).length,
    readCalls: calls.filter((r) => r.path.startsWith(`/api/v1/namespaces/${namespace}/secrets/`)).length,
    filesPerMount: replies[0]?.files.length ?? 0,
  };
}
