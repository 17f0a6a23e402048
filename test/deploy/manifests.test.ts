import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { parseProviderConfig } from '../../src/config/load.js';
import { runUsp } from '../helpers/bin.js';
import { kustomize, parseDocs, root, type Doc } from './render.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer, type Resource } from '../servers/kubernetes.js';

const deployDir = join(root, 'deploy');
const baseDir = join(deployDir, 'base');
const examplesDir = join(deployDir, 'examples');
const socketDir = '/var/run/secrets-store-csi-providers';

/** Every example directory with a SecretProviderClass (other stores' examples included). */
const exampleDirs = existsSync(examplesDir)
  ? (await readdir(examplesDir, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && existsSync(join(examplesDir, e.name, 'secretproviderclass.yaml')))
      .map((e) => e.name)
      .sort()
  : [];

function only(docs: Doc[], kind: string, name?: string): Doc {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata?.name === name));
  expect(found, `exactly one ${kind}${name ? ` ${name}` : ''}`).toHaveLength(1);
  return found[0]!;
}

/** Each example keeps the provider config its class is written for next to the class. */
function providerConfigPath(dir: string): string {
  const path = join(dir, 'provider-config.yaml');
  if (!existsSync(path)) throw new Error(`${relative(root, dir)}: no provider-config.yaml next to its secretproviderclass.yaml`);
  return path;
}

async function yamlFilesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** Stages of a Dockerfile: the instructions after each FROM, continuation lines joined. */
function dockerStages(text: string): string[][] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: string[][] = [];
  for (const line of lines) {
    if (/^FROM\s/i.test(line)) stages.push([line]);
    else stages.at(-1)?.push(line);
  }
  return stages;
}

describe('deploy/base', () => {
  let docs: Doc[];
  let daemonSet: Doc;
  let pod: Doc;
  let container: Doc;

  beforeAll(async () => {
    docs = await kustomize(baseDir);
    daemonSet = only(docs, 'DaemonSet');
    pod = daemonSet.spec.template.spec;
    expect(pod.containers).toHaveLength(1);
    container = pod.containers[0];
  });

  it('puts every namespaced resource in usp-system', () => {
    for (const doc of docs.filter((d) => !['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(d.kind))) {
      expect(doc.metadata.namespace, `${doc.kind} ${doc.metadata.name}`).toBe('usp-system');
    }
  });

  it('mounts the driver socket directory from the host at the same path, and serves there', () => {
    const volume = pod.volumes.find((v: Doc) => v.hostPath?.path === socketDir);
    expect(volume, `a hostPath volume for ${socketDir}`).toBeDefined();
    const mount = container.volumeMounts.find((m: Doc) => m.name === volume.name);
    expect(mount?.mountPath).toBe(socketDir);
    expect(mount?.readOnly ?? false).toBe(false);
    const env = Object.fromEntries((container.env ?? []).map((e: Doc) => [e.name, e.value]));
    expect(env.USP_SOCKET_DIR ?? socketDir).toBe(socketDir);
    expect(env.USP_PROVIDER_NAME ?? 'universal').toBe('universal');
  });

  it('locks the container down', () => {
    const sc = container.securityContext;
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.privileged ?? false).toBe(false);
    expect(sc.capabilities.drop).toContain('ALL');
    expect(sc.capabilities.add ?? []).toEqual([]);
    expect(sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.hostPID ?? false).toBe(false);
  });

  it('runs as the user the Dockerfile declares', async () => {
    const runtime = dockerStages(await readFile(join(root, 'Dockerfile'), 'utf8')).at(-1)!;
    const user = runtime.filter((l) => /^USER\s/i.test(l)).at(-1)?.split(/\s+/)[1]?.split(':')[0];
    expect(user, 'the runtime stage sets USER').toBeDefined();
    const runAsUser = container.securityContext.runAsUser ?? pod.securityContext?.runAsUser;
    expect(String(runAsUser)).toBe(user);
  });

  it('updates one node at a time without a second pod on the node', () => {
    expect(daemonSet.spec.updateStrategy.type).toBe('RollingUpdate');
    expect(daemonSet.spec.updateStrategy.rollingUpdate.maxSurge).toBe(0);
    expect(daemonSet.spec.updateStrategy.rollingUpdate.maxUnavailable).toBe(1);
  });

  it('probes /healthz (liveness) and /readyz (readiness) on port 8095', () => {
    const portOf = (port: number | string) =>
      typeof port === 'number' ? port : container.ports.find((p: Doc) => p.name === port)?.containerPort;
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(portOf(container.livenessProbe.httpGet.port)).toBe(8095);
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(portOf(container.readinessProbe.httpGet.port)).toBe(8095);
  });

  it('runs on every Linux node with node-critical priority', () => {
    expect(pod.nodeSelector['kubernetes.io/os']).toBe('linux');
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    expect(pod.priorityClassName).toBe('system-node-critical');
  });

  it('has resource requests and a memory limit, with the V8 heap below it', () => {
    const { requests, limits } = container.resources;
    expect(requests.cpu).toBeDefined();
    expect(requests.memory).toBeDefined();
    const limitMiB = Number(/^(\d+)Mi$/.exec(limits.memory)?.[1]);
    expect(limitMiB).toBeGreaterThan(0);
    const nodeOptions = container.env.find((e: Doc) => e.name === 'NODE_OPTIONS')?.value ?? '';
    const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(nodeOptions)?.[1]);
    expect(heapMiB).toBeGreaterThan(0);
    expect(heapMiB).toBeLessThan(limitMiB);
  });

  it('mounts the config ConfigMap as a directory (reloads work) at the path the provider reads', () => {
    const configMap = only(docs, 'ConfigMap');
    const volume = pod.volumes.find((v: Doc) => v.configMap?.name === configMap.metadata.name);
    expect(volume, 'a volume for the config ConfigMap').toBeDefined();
    const mount = container.volumeMounts.find((m: Doc) => m.name === volume.name);
    expect(mount.subPath, 'a subPath mount never sees ConfigMap updates').toBeUndefined();
    const configPath = container.env.find((e: Doc) => e.name === 'USP_CONFIG')?.value ?? '/etc/usp/config.yaml';
    const key = relative(mount.mountPath, configPath);
    expect(Object.keys(configMap.data)).toContain(key);
  });

  it('ships a provider config that passes the validator, with a kubernetes store as default', async () => {
    const configMap = only(docs, 'ConfigMap');
    const text = Object.values(configMap.data as Record<string, string>)[0]!;
    const result = await parseProviderConfig(text, baseDir);
    expect(result.ok ? [] : result.problems).toEqual([]);
    if (!result.ok) return;
    const store = result.config.stores.find((s) => s.name === result.config.defaultStore);
    expect(store?.name).toBe('cluster');
    expect(store?.definition.kind).toBe('kubernetes');
    expect(store?.options).toMatchObject({ identity: 'pod' });
  });

  it('grants the provider no RBAC (stores read with the pod identity)', () => {
    expect(docs.filter((d) => /Role(Binding)?$/.test(d.kind))).toEqual([]);
  });
});

describe('deploy/examples', () => {
  let work: string;
  let placeholderKubeconfig: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'usp-deploy-'));
    // A kubernetes store without kubeconfig uses the in-cluster config, which does not exist here;
    // validate connects to nothing, so any syntactically valid cluster stands in for it.
    placeholderKubeconfig = join(work, 'kubeconfig');
    await writeFile(
      placeholderKubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'placeholder', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'placeholder', user: { token: 'placeholder' } }],
        contexts: [{ name: 'placeholder', context: { cluster: 'placeholder', user: 'placeholder' } }],
        'current-context': 'placeholder',
      }),
    );
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('include the file and kubernetes examples', () => {
    expect(exampleDirs).toEqual(expect.arrayContaining(['file', 'kubernetes']));
  });

  /**
   * The example's provider config, with in-cluster kubernetes stores pointed at `kubeconfig`
   * (the placeholder by default). The copy sits in a directory of symlinks to the example's files,
   * so paths relative to the config (a CA file, a file store root) still resolve.
   */
  async function offlineConfig(name: string, kubeconfig = placeholderKubeconfig): Promise<string> {
    const dir = join(examplesDir, name);
    const path = providerConfigPath(dir);
    const config = parseYaml(await readFile(path, 'utf8')) as Doc;
    const inCluster = (config.stores ?? []).filter((s: Doc) => s.backend === 'kubernetes' && s.kubeconfig === undefined);
    if (inCluster.length === 0) return path;
    for (const store of inCluster) store.kubeconfig = kubeconfig;
    const shadow = await mkdtemp(join(work, `${name}-`));
    for (const entry of await readdir(dir)) await symlink(join(dir, entry), join(shadow, entry));
    const copy = join(shadow, `.offline-${basename(path)}`);
    await writeFile(copy, stringify(config));
    return copy;
  }

  describe.each(exampleDirs)('%s', (name) => {
    const dir = join(examplesDir, name);

    it('has a SecretProviderClass that validates against its provider config, for its pod', async () => {
      const spcPath = join(dir, 'secretproviderclass.yaml');
      const spc = only(parseDocs(await readFile(spcPath, 'utf8'), spcPath), 'SecretProviderClass');
      const args = ['validate', '--config', await offlineConfig(name), '--class', spcPath];
      const podPath = join(dir, 'pod.yaml');
      if (existsSync(podPath)) {
        const pod = only(parseDocs(await readFile(podPath, 'utf8'), podPath), 'Pod');
        expect(pod.metadata.namespace).toBe(spc.metadata.namespace);
        const volume = pod.spec.volumes.find((v: Doc) => v.csi?.driver === 'secrets-store.csi.k8s.io');
        expect(volume?.csi.readOnly).toBe(true);
        expect(volume?.csi.volumeAttributes.secretProviderClass).toBe(spc.metadata.name);
        args.push('--namespace', pod.metadata.namespace, '--service-account', pod.spec.serviceAccountName ?? 'default');
      }
      const result = await runUsp(args);
      expect(result.stdout + result.stderr).toMatch(/^ok: /);
      expect(result.code).toBe(0);
    });

    it.runIf(existsSync(join(dir, 'kustomization.yaml')))('renders, and deploys the provider config it validates', async () => {
      const docs = await kustomize(dir);
      const configMaps = docs.filter((d) => d.kind === 'ConfigMap' && d.data?.['config.yaml'] !== undefined);
      expect(configMaps).toHaveLength(1);
      expect(configMaps[0]!.data['config.yaml']).toBe(await readFile(providerConfigPath(dir), 'utf8'));
      only(docs, 'DaemonSet');
    });
  });

  describe('kubernetes, against the Kubernetes API test server', () => {
    const dir = join(examplesDir, 'kubernetes');
    const read = async (file: string) => parseDocs(await readFile(join(dir, file), 'utf8'), file);
    let api: KubernetesTestServer;
    let config: string;
    let spcPath: string;
    let pod: Doc;

    beforeAll(async () => {
      api = await startKubernetesTestServer();
      for (const doc of await read('secrets.yaml')) {
        const { namespace, name } = doc.metadata;
        if (doc.kind === 'Secret') {
          const data = { ...doc.stringData };
          for (const [key, value] of Object.entries(doc.data ?? {})) data[key] = Buffer.from(value as string, 'base64');
          api.putSecret({ namespace, name, type: doc.type, data });
        } else if (doc.kind === 'ConfigMap') {
          api.putConfigMap({ namespace, name, data: doc.data });
        }
      }
      // The example's Roles and RoleBindings, as the test server's authorisation table.
      const rbac = [...(await read('rbac.yaml')), ...(await read('rbac-provider.yaml'))];
      for (const binding of rbac.filter((d) => d.kind === 'RoleBinding')) {
        const namespace = binding.metadata.namespace;
        const role = only(rbac.filter((d) => d.metadata.namespace === namespace), 'Role', binding.roleRef.name);
        for (const rule of role.rules.filter((r: Doc) => r.verbs.includes('get'))) {
          for (const resource of rule.resources as Resource[]) {
            for (const subject of binding.subjects) {
              const user = serviceAccountUser(subject.namespace, subject.name);
              api.allow({ subject: user, namespace, resource, names: rule.resourceNames });
            }
          }
        }
      }
      // The provider reads with the service account of deploy/base (identity: provider).
      const base = await kustomize(baseDir);
      const account = only(base, 'ServiceAccount').metadata;
      const providerUser = serviceAccountUser(account.namespace, account.name);
      await api.addUser(providerUser, 'token');
      const kubeconfig = join(work, 'test-server.kubeconfig');
      await api.writeKubeconfig(kubeconfig, { user: providerUser });
      config = await offlineConfig('kubernetes', kubeconfig);
      spcPath = join(dir, 'secretproviderclass.yaml');
      pod = only(await read('pod.yaml'), 'Pod');
    });

    afterAll(async () => {
      await api?.close();
    });

    async function render(namespace: string, serviceAccount: string, out: string) {
      const tokenFile = join(work, `${namespace}-${serviceAccount}.token`);
      await writeFile(tokenFile, api.issueToken({ namespace, serviceAccount }).token);
      return runUsp([
        'render', '--config', config, '--class', spcPath, '--namespace', namespace,
        '--service-account', serviceAccount, '--token', `=${tokenFile}`, '--out', out,
      ]);
    }

    it("gives the example pod every file, with the example RBAC and the pod's token", async () => {
      const out = join(work, 'kubernetes-out');
      const result = await render(pod.metadata.namespace, pod.spec.serviceAccountName, out);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const secrets = await read('secrets.yaml');
      const data = (name: string) => only(secrets, name === 'ca-bundle' ? 'ConfigMap' : 'Secret', name);
      const file = (name: string) => readFile(join(out, name), 'utf8');
      expect(await file('db/username')).toBe(data('db-credentials').stringData.username);
      expect(await file('db/password')).toBe(data('db-credentials').stringData.password);
      expect(await file('tls/tls.crt')).toBe(data('api-tls').stringData['tls.crt']);
      expect(await file('tls/tls.key')).toBe(data('api-tls').stringData['tls.key']);
      expect(JSON.parse(await file('settings.json'))).toEqual(data('shop-settings').stringData);
      expect(await file('ca.pem')).toBe(data('ca-bundle').data['ca.pem']);
    });

    it("refuses another service account of the namespace: the API server applies the pod's RBAC", async () => {
      const result = await render(pod.metadata.namespace, 'other', join(work, 'other-out'));
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/PermissionDenied: .*service account shop\/other may not get Secret platform\/db-credentials \(Forbidden\)/);
    });

    it('refuses a pod of a namespace the shared store does not serve', async () => {
      const result = await render('elsewhere', 'app', join(work, 'elsewhere-out'));
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/PermissionDenied: .*"ca\.pem" \(store shared, ref platform\/ca-bundle\).*no access rule allows it/);
    });
  });
});

describe('files under deploy/', () => {
  it('are all valid YAML', async () => {
    const files = await yamlFilesUnder(deployDir);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      expect(() => parseDocs(readFileSync(file, 'utf8'), relative(root, file)), relative(root, file)).not.toThrow();
    }
  });

  it('are Kubernetes objects with apiVersion and kind, except Helm values files', async () => {
    for (const file of await yamlFilesUnder(deployDir)) {
      if (/values\.ya?ml$/.test(file) || /(^|\/)(provider-)?config\.ya?ml$/.test(file)) continue;
      for (const doc of parseDocs(readFileSync(file, 'utf8'), file)) {
        expect(doc.apiVersion, relative(root, file)).toEqual(expect.any(String));
        expect(doc.kind, relative(root, file)).toEqual(expect.any(String));
      }
    }
  });
});

describe('Dockerfile', () => {
  let dockerfile: string;
  let stages: string[][];
  let runtime: string[];

  beforeAll(async () => {
    dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8');
    stages = dockerStages(dockerfile);
    runtime = stages.at(-1)!;
  });

  it('builds in one stage and runs from another on a pinned Node LTS slim image', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const text = stages.flat().join('\n');
    expect(text).toMatch(/npm ci\b/);
    expect(text).toMatch(/npm run build/);
    expect(text).toMatch(/npm (prune --omit=dev|ci --omit=dev)/);
    const images = [...dockerfile.matchAll(/^\s*(?:ARG\s+\w+=|FROM\s+)(node:\S+)/gm)].map((m) => m[1]);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toMatch(/^node:\d+(\.\d+)*-slim$/);
  });

  it('copies the compiled code, package.json, production node_modules and the proto files the server loads', () => {
    const copies = runtime.filter((l) => /^COPY\s/i.test(l));
    for (const source of ['dist/src', 'package.json', 'node_modules', 'proto']) {
      expect(copies.some((l) => new RegExp(`\\s\\S*${source}(/|\\s)`).test(`${l} `)), `COPY of ${source}`).toBe(true);
    }
    expect(copies.some((l) => /\ssrc(\/)?\s/.test(`${l} `) && !/dist\/src/.test(l)), 'no TypeScript sources').toBe(false);
  });

  it('has an exec-form ENTRYPOINT running node on the built bin, and serve as default command', () => {
    const entrypoint = runtime.filter((l) => /^ENTRYPOINT\s/i.test(l)).at(-1);
    expect(entrypoint, 'an ENTRYPOINT in the runtime stage').toBeDefined();
    const argv = JSON.parse(entrypoint!.replace(/^ENTRYPOINT\s+/i, '')) as string[];
    expect(argv[0]).toBe('node');
    expect(argv[1]).toMatch(/\/dist\/src\/main\.js$/);
    const cmd = runtime.filter((l) => /^CMD\s/i.test(l)).at(-1);
    expect(JSON.parse(cmd!.replace(/^CMD\s+/i, ''))).toEqual(['serve']);
  });

  it('carries OCI labels', () => {
    expect(runtime.join('\n')).toMatch(/org\.opencontainers\.image\.title=/);
  });

  it('has a build context that includes everything the Dockerfile copies from it', async () => {
    const rules = (await readFile(join(root, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const ignored = (path: string) => {
      let result = false;
      for (const rule of rules) {
        const negate = rule.startsWith('!');
        const pattern = (negate ? rule.slice(1) : rule).replace(/\/$/, '');
        if (pattern === '*' || pattern === path || path.startsWith(`${pattern}/`)) result = !negate;
      }
      return result;
    };
    const sources = stages
      .flat()
      .filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l))
      .flatMap((l) => l.split(/\s+/).slice(1, -1).filter((a) => !a.startsWith('--')));
    expect(sources).toContain('proto');
    for (const source of sources) expect(ignored(source.replace(/^\.\//, '').replace(/\/$/, '')), source).toBe(false);
  });
});
