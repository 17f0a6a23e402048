/**
 * Per-node footprint by store kind: the provider under the DaemonSet's flags with a file store plus
 * one store of a kind, each against its test server, idle before any Mount and idle again after one
 * Mount through that store (which loads the kind's client). A row with every kind configured
 * closes the table. Figures are RSS from /proc, compared with the file-store-only provider of the
 * same run.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createDriverClient, driverRequest, type MountRequest } from '../test/helpers/driver-client.js';
import { startAwsTestServer } from '../test/servers/aws.js';
import { startAzureTestServer } from '../test/servers/azure.js';
import { startGcpTestServer } from '../test/servers/gcp.js';
import { serviceAccountUser, type KubernetesTestServer } from '../test/servers/kubernetes.js';
import { startVaultTestServer } from '../test/servers/vault.js';
import { describeSettings, type RunSettings } from './provider.js';

export interface FootprintDeps {
  readonly dir: string;
  readonly api: KubernetesTestServer;
  readonly settings: RunSettings;
  start(dir: string, config: string, settings: RunSettings, socketDir: string): Promise<{ proc: ChildProcess; readyMs: number }>;
  /** RSS (MiB) once the process has settled with no Mount in flight. */
  readIdleRss(pid: number): Promise<number>;
}

interface Kind {
  readonly kind: string;
  /** The store entry (YAML flow mapping) and a Mount reading one object through it. */
  readonly store: string;
  request(): MountRequest;
}

export interface KindRow {
  readonly kind: string;
  readonly idleMiB: number;
  readonly afterMountMiB: number;
  /** From spawn to the first 200 from /readyz. */
  readonly startupMs: number;
}

export async function measureFootprint(deps: FootprintDeps) {
  const servers = await startServers(deps);
  try {
    const rows: KindRow[] = [];
    const fileOnly = await measureKinds(deps, 'file', []);
    rows.push(fileOnly);
    for (const kind of servers.kinds) rows.push(await measureKinds(deps, kind.kind, [kind]));
    const all = await measureKinds(deps, 'every kind', servers.kinds);
    return {
      nodeFlags: describeSettings(deps.settings),
      rows: rows.map((r) => ({ ...r, addedIdleMiB: round(r.idleMiB - fileOnly.idleMiB), addedAfterMountMiB: round(r.afterMountMiB - fileOnly.afterMountMiB) })),
      every: all,
    };
  } finally {
    await servers.close();
  }
}

async function measureKinds(deps: FootprintDeps, label: string, kinds: readonly Kind[]): Promise<KindRow> {
  const name = label.replace(/\W+/g, '-');
  const socketDir = `sock-${name}`;
  await mkdir(join(deps.dir, socketDir), { mode: 0o700, recursive: true });
  const stores = ['  - {name: files, backend: file, root: ./secrets}', ...kinds.map((k) => `  - ${k.store}`)].join('\n');
  await writeFile(join(deps.dir, `footprint-${name}.yaml`), `versionKey: bench-version-key-0123456789\nstores:\n${stores}\n`);
  const { proc, readyMs } = await deps.start(deps.dir, `footprint-${name}.yaml`, deps.settings, socketDir);
  const client = createDriverClient(join(deps.dir, socketDir, 'universal.sock'));
  try {
    const idleMiB = await deps.readIdleRss(proc.pid!);
    const requests = kinds.length > 0 ? kinds.map((k) => k.request()) : [driverRequest('- {name: s, store: files, ref: s0}', { podName: 'footprint' })];
    for (const request of requests) await client.mount(request);
    return { kind: label, idleMiB, afterMountMiB: await deps.readIdleRss(proc.pid!), startupMs: readyMs };
  } finally {
    client.close();
    proc.kill('SIGTERM');
    await once(proc, 'exit');
  }
}

const pod = { namespace: 'bench', serviceAccount: 'app', podName: 'footprint' };
const tokenEntry = (token: string, expiresAt = Date.now() + 3_600_000) => ({ token, expirationTimestamp: new Date(expiresAt).toISOString() });

async function startServers({ dir, api }: FootprintDeps) {
  const [vault, aws, azure, gcp] = await Promise.all([startVaultTestServer(), startAwsTestServer(), startAzureTestServer(), startGcpTestServer()]);
  await Promise.all([
    writeFile(join(dir, 'vault-ca.pem'), vault.ca.cert),
    writeFile(join(dir, 'azure-ca.pem'), azure.ca.cert),
    writeFile(join(dir, 'gcp-ca.pem'), gcp.ca.cert),
  ]);
  api.putSecret({ namespace: 'bench', name: 'footprint', data: { v: 'kube-value' } });
  api.allow({ subject: serviceAccountUser('bench', 'app'), namespace: 'bench', resource: 'secrets' });
  vault.enableKv('secret', 2);
  vault.writeKv('secret', 'bench/db', { password: 'vault-value' });
  vault.definePolicy('bench', { 'secret/data/bench/*': ['read'] });
  vault.defineRole({ name: 'bench', boundServiceAccountNames: ['app'], boundNamespaces: ['bench'], policies: ['bench'] });
  aws.defineRole({ name: 'bench-app', trust: [{ namespace: 'bench', serviceAccount: 'app' }], allow: ['bench/*', '/bench/*'] });
  aws.putSecret('bench/db', 'aws-value');
  aws.putParameter('/bench/db', 'ssm-value', { type: 'SecureString' });
  const clientId = '0b6f1c2d-3e4a-4b5c-8d6e-7f8091a2b3c4';
  azure.federate({ clientId, namespace: 'bench', serviceAccount: 'app' });
  azure.grant(clientId, ['secrets/bench-*']);
  azure.setSecret('bench-db', 'azure-value');
  gcp.addVersion('bench-db', 'gcp-value');
  gcp.grantAccess(gcp.federatedMember('bench', 'app'), 'bench-db');
  const awsAuth = `{method: irsa, stsEndpoint: "${aws.stsUrl}"}`;
  const awsTokens = () => ({ 'sts.amazonaws.com': tokenEntry(aws.issuePodToken({ ...pod, audience: 'sts.amazonaws.com' }).token) });
  const role = { role: aws.roleArn('bench-app') };
  const kubeToken = () => {
    const { token, expiresAt } = api.issueToken({ namespace: 'bench', serviceAccount: 'app', expiresInSeconds: 3600 });
    return { '': tokenEntry(token, expiresAt) };
  };
  const kinds: Kind[] = [
    {
      kind: 'kubernetes',
      store: '{name: kube, backend: kubernetes, kubeconfig: ./kubeconfig}',
      request: () => driverRequest('- {name: k, store: kube, ref: footprint, key: v}', { ...pod, tokens: kubeToken() }),
    },
    {
      kind: 'vault',
      store: `{name: vault, backend: vault, address: "${vault.url}", tls: {caFile: ./vault-ca.pem}, auth: {method: kubernetes, role: bench}}`,
      request: () => driverRequest('- {name: v, store: vault, ref: secret/data/bench/db, key: password}', { ...pod, tokens: { vault: tokenEntry(vault.issuePodToken(pod).token) } }),
    },
    {
      kind: 'aws-secrets-manager',
      store: `{name: sm, backend: aws-secrets-manager, region: us-east-1, endpoint: "${aws.endpoint('us-east-1')}", auth: ${awsAuth}}`,
      request: () => driverRequest('- {name: a, store: sm, ref: bench/db}', { ...pod, parameters: role, tokens: awsTokens() }),
    },
    {
      kind: 'aws-parameter-store',
      store: `{name: ssm, backend: aws-parameter-store, region: us-east-1, endpoint: "${aws.endpoint('us-east-1')}", auth: ${awsAuth}}`,
      request: () => driverRequest('- {name: p, store: ssm, ref: /bench/db}', { ...pod, parameters: role, tokens: awsTokens() }),
    },
    {
      kind: 'azure-key-vault',
      store: `{name: kv, backend: azure-key-vault, vaultUrl: "${azure.url}", authorityHost: "${azure.url}", tenantId: "${azure.tenantId}", clientId: "${clientId}", tls: {caFile: ./azure-ca.pem}}`,
      request: () => driverRequest('- {name: z, store: kv, ref: bench-db}', { ...pod, tokens: { 'api://AzureADTokenExchange': tokenEntry(azure.issuePodToken(pod)) } }),
    },
    {
      kind: 'gcp-secret-manager',
      store: `{name: gcp, backend: gcp-secret-manager, project: "${gcp.projectId}", audience: "${gcp.poolAudience}", endpoints: {sts: "${gcp.url}", iamCredentials: "${gcp.url}", secretManager: "${gcp.url}"}, tls: {caFile: ./gcp-ca.pem}}`,
      request: () => {
        const issued = gcp.issuePodToken(pod);
        return driverRequest('- {name: g, store: gcp, ref: bench-db}', { ...pod, tokens: { [gcp.poolAudience]: tokenEntry(issued.token, issued.expiresAt) } });
      },
    },
  ];
  return {
    kinds,
    close: () => Promise.all([vault.close(), aws.close(), azure.close(), gcp.close()]).then(() => undefined),
  };
}

const round = (n: number) => Math.round(n * 100) / 100;
