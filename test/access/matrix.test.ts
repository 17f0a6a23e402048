/**
 * The access-control matrix: `checkAccess` against an independent oracle over every combination
 * of namespace, service account and ref with allow rules, deny rules and mixes; then the same
 * decisions through the real socket for a file store and a Kubernetes store (access rules, and
 * the API server's own RBAC).
 */
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessMatch, AccessRule } from '../../src/config/schema.js';
import type { Identity } from '../../src/identity.js';
import { checkAccess } from '../../src/mount/policy.js';
import { createCanaries } from '../helpers/canary.js';
import { driverRequest, fileMap, type PodOptions } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { fileStore, providerConfigYaml } from '../helpers/yaml.js';
import { serviceAccountUser, startKubernetesTestServer, type KubernetesTestServer } from '../servers/kubernetes.js';

// ---------------------------------------------------------------------------------------------
// The oracle: the documented semantics, written from scratch.
//   `*` matches within one path element (a whole-element `*` needs at least one character);
//   `**` as a whole element matches zero or more elements; elsewhere it is a `*`;
//   wildcards never match a "." or ".." element (a ref must not climb out of what a glob names);
//   `{namespace}` and `{serviceAccount}` are the pod's own names;
//   a rule matches when every field it names matches; deny wins; with allow rules one must match;
//   only deny rules: allowed unless denied; no rules: allowed.

function oracleGlob(glob: string, value: string): boolean {
  const g = glob.split('/');
  const v = value.split('/');
  const wildOk = (element: string) => element !== '.' && element !== '..' && !element.includes('\\');
  const elementMatch = (pattern: string, element: string): boolean => {
    if (!pattern.includes('*')) return pattern === element;
    if (!wildOk(element)) return false;
    if (/^\*+$/.test(pattern)) return element.length > 0;
    const parts = pattern.split(/\*+/);
    let at = 0;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i === 0) {
        if (!element.startsWith(part)) return false;
        at = part.length;
      } else if (i === parts.length - 1) {
        return element.length - part.length >= at && element.endsWith(part);
      } else {
        const found = element.indexOf(part, at);
        if (found < 0) return false;
        at = found + part.length;
      }
    }
    return true;
  };
  const from = (i: number, j: number): boolean => {
    if (i === g.length) return j === v.length;
    if (g[i] === '**') {
      for (let k = j; k <= v.length; k++) {
        if (k > j && !wildOk(v[k - 1]!)) return false;
        if (from(i + 1, k)) return true;
      }
      return false;
    }
    return j < v.length && elementMatch(g[i]!, v[j]!) && from(i + 1, j + 1);
  };
  return from(0, 0);
}

function oracleMatches(m: AccessMatch, id: Identity, ref: string): boolean {
  const fill = (glob: string) => glob.replaceAll('{namespace}', id.namespace).replaceAll('{serviceAccount}', id.serviceAccount);
  const any = (globs: readonly string[] | undefined, value: string) => globs === undefined || globs.some((g) => oracleGlob(fill(g), value));
  return any(m.namespaces, id.namespace) && any(m.serviceAccounts, id.serviceAccount) && any(m.refs, ref);
}

function oracle(rules: readonly AccessRule[], id: Identity, ref: string): boolean {
  if (rules.some((r) => 'deny' in r && oracleMatches(r.deny, id, ref))) return false;
  const allows = rules.flatMap((r) => ('allow' in r ? [r.allow] : []));
  return allows.length === 0 || allows.some((a) => oracleMatches(a, id, ref));
}

// ---------------------------------------------------------------------------------------------
// The matrix's axes.

const namespaces = ['shop', 'team-a', 'team-b', 'web'];
const serviceAccounts = ['default', 'app', 'app-v2', 'intruder'];
const identities: Identity[] = namespaces.flatMap((namespace) =>
  serviceAccounts.map((serviceAccount) => ({ namespace, serviceAccount, podName: 'p', podUid: 'u' })),
);
const refs = [
  'shop/db', 'shop/app/token', 'shop/default/token', 'team-a/db', 'team-b/x/y/z', 'web/db', 'platform/ca', 'db', 'shop',
  'shop/.hidden', 'shop/../platform/ca', 'shop/./db', '../shop/db', 'shop//db', 'team-a/app-v2/key', 'secret/data/shop/db',
];
const namespaceGlobs: Array<string[] | undefined> = [undefined, ['shop'], ['team-*'], ['*'], ['shop', 'web'], ['{namespace}'], ['team-a']];
const serviceAccountGlobs: Array<string[] | undefined> = [undefined, ['app'], ['app*'], ['*'], ['default', 'intruder'], ['{serviceAccount}']];
const refGlobs: Array<string[] | undefined> = [
  undefined, ['shop/db'], ['shop/*'], ['shop/**'], ['{namespace}/*'], ['{namespace}/**'], ['*/db'], ['**'], ['**/db'],
  ['{namespace}/{serviceAccount}/*'], ['team-*/**'], ['*'], ['secret/data/{namespace}/*'], ['shop/**', 'platform/ca'],
];

const matches: AccessMatch[] = namespaceGlobs.flatMap((ns) =>
  serviceAccountGlobs.flatMap((sa) =>
    refGlobs.flatMap((r) =>
      ns || sa || r ? [{ ...(ns && { namespaces: ns }), ...(sa && { serviceAccounts: sa }), ...(r && { refs: r }) } as AccessMatch] : [],
    ),
  ),
);

function compare(rules: readonly AccessRule[]): { checked: number; mismatches: string[] } {
  const mismatches: string[] = [];
  let checked = 0;
  for (const id of identities) {
    for (const ref of refs) {
      checked += 1;
      const expected = oracle(rules, id, ref);
      const actual = checkAccess(rules, id, ref);
      if (actual.allowed !== expected) {
        mismatches.push(`${JSON.stringify(rules)} ${id.namespace}/${id.serviceAccount} ${ref}: expected ${expected}, got ${actual.allowed}`);
      } else if (!actual.allowed && actual.reason.trim() === '') mismatches.push('a refusal without a reason');
    }
  }
  return { checked, mismatches };
}

describe('access matrix: checkAccess against an independent oracle', { timeout: 120_000 }, () => {
  it('the oracle agrees with the documented examples', () => {
    expect(oracleGlob('team-*', 'team-a')).toBe(true);
    expect(oracleGlob('shop/*', 'shop/a/b')).toBe(false);
    expect(oracleGlob('shop/**', 'shop/a/b')).toBe(true);
    expect(oracleGlob('shop/**', 'shop/../platform/ca')).toBe(false);
    expect(oracle([], identities[0]!, 'anything')).toBe(true);
    expect(oracle([{ deny: { namespaces: ['web'] } }], identities[0]!, 'x')).toBe(true);
  });

  it('no rules allow everything', () => {
    const { mismatches } = compare([]);
    expect(mismatches).toEqual([]);
    for (const id of identities) for (const ref of refs) expect(checkAccess([], id, ref).allowed).toBe(true);
  });

  it('every single allow rule and every single deny rule', () => {
    let checked = 0;
    const mismatches: string[] = [];
    for (const m of matches) {
      for (const rules of [[{ allow: m }], [{ deny: m }]] as AccessRule[][]) {
        const r = compare(rules);
        checked += r.checked;
        mismatches.push(...r.mismatches);
      }
    }
    console.log(`access matrix: ${matches.length * 2} single rules, ${checked} decisions`);
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(checked).toBeGreaterThan(50_000);
  });

  it('pairs: allow + deny (deny wins), allow + allow (one must match), deny + deny (default allow)', () => {
    // Every pair over a spread of the matches (every 17th: 35 of them), both orders for allow + deny.
    const some = matches.filter((_, i) => i % 17 === 0);
    let checked = 0;
    const mismatches: string[] = [];
    for (const a of some) {
      for (const b of some) {
        for (const rules of [[{ allow: a }, { deny: b }], [{ deny: b }, { allow: a }], [{ allow: a }, { allow: b }], [{ deny: a }, { deny: b }]] as AccessRule[][]) {
          const r = compare(rules);
          checked += r.checked;
          mismatches.push(...r.mismatches);
        }
      }
      if (mismatches.length > 10) break;
    }
    console.log(`access matrix: ${some.length ** 2 * 4} rule pairs, ${checked} decisions`);
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(checked).toBeGreaterThan(1_000_000);
  });

  it('random rule lists of up to five allow and deny rules', () => {
    const rule: fc.Arbitrary<AccessRule> = fc
      .tuple(fc.boolean(), fc.constantFrom(...matches))
      .map(([allow, m]) => (allow ? { allow: m } : { deny: m }));
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 5 }), fc.constantFrom(...identities), fc.constantFrom(...refs), (rules, id, ref) => {
        expect(checkAccess(rules, id, ref).allowed).toBe(oracle(rules, id, ref));
      }),
      { numRuns: 3000, ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}) },
    );
  });

  it('placeholders are the pod own names, not globs the pod can widen', () => {
    const rules: AccessRule[] = [{ allow: { refs: ['{namespace}/**'] } }];
    expect(checkAccess(rules, identities[0]!, 'shop/db').allowed).toBe(true);
    expect(checkAccess(rules, identities[0]!, 'team-a/db').allowed).toBe(false);
    // A literal "{namespace}" in a ref is not the placeholder.
    expect(checkAccess(rules, identities[0]!, '{namespace}/db').allowed).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Through the socket.

const canaries = createCanaries();
const errors: string[] = [];

describe('access rules through the socket: file store', () => {
  let p: TestProvider;
  const shopDb = canaries.next('file-shop');
  const webDb = canaries.next('file-web');

  beforeAll(async () => {
    p = await startTestProvider({
      config: providerConfigYaml({
        defaultStore: 'files',
        versionKey: 'access-version-key-0123456789',
        stores: [fileStore('files', '../secrets', { access: [{ allow: { refs: ['{namespace}/**'] } }, { deny: { serviceAccounts: ['intruder'] } }] })],
      }),
      files: { 'secrets/shop/db': shopDb, 'secrets/web/db': webDb },
    });
  });
  afterAll(async () => {
    await p.stop();
    canaries.expectNoneIn(p.logs, 'provider logs');
  });

  it('a pod reads its own namespace', async () => {
    const reply = await p.client.mount(driverRequest('- {name: db, ref: shop/db}', { namespace: 'shop' }));
    expect(fileMap(reply).get('db')?.contents.toString()).toBe(shopDb);
  });

  it("a pod trying another namespace's objects gets PERMISSION_DENIED naming its service account", async () => {
    const err = await p.client.mountError(driverRequest('- {name: db, ref: shop/db}', { namespace: 'web', serviceAccount: 'app' }));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('objects[0] "db" (store files, ref shop/db)');
    expect(err.details).toContain('service account web/app');
  });

  it('a .. ref cannot climb out of the namespace the rule names', async () => {
    const err = await p.client.mountError(driverRequest('- {name: db, ref: web/../shop/db}', { namespace: 'web' }));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
  });

  it('a deny rule wins over the allow rule', async () => {
    const err = await p.client.mountError(driverRequest('- {name: db, ref: shop/db}', { namespace: 'shop', serviceAccount: 'intruder' }));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('service account shop/intruder');
    expect(err.details).toContain('denied by access[1]');
  });
});

describe('access through the socket: kubernetes store (access rules and the API server RBAC)', () => {
  let api: KubernetesTestServer;
  let p: TestProvider;
  const shopDb = canaries.next('k8s-shop');
  const webDb = canaries.next('k8s-web');
  const rootKey = canaries.next('k8s-root');

  function pod(namespace: string, serviceAccount: string): PodOptions {
    const { token, expiresAt } = api.issueToken({ namespace, serviceAccount, expiresInSeconds: 600 });
    canaries.add(token);
    return { namespace, serviceAccount, tokens: { '': { token, expirationTimestamp: new Date(expiresAt).toISOString() } } };
  }

  beforeAll(async () => {
    api = await startKubernetesTestServer();
    api.putSecret({ namespace: 'shop', name: 'db', data: { password: shopDb } });
    api.putSecret({ namespace: 'web', name: 'db', data: { password: webDb } });
    api.putSecret({ namespace: 'platform', name: 'root-key', data: { key: rootKey } });
    api.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets' });
    api.allow({ subject: serviceAccountUser('web', 'app'), namespace: 'web', resource: 'secrets' });
    const kubeconfigPath = join(tmpdir(), `usp-access-kubeconfig-${process.pid}`);
    await api.writeKubeconfig(kubeconfigPath);
    const kubeconfig = await readFile(kubeconfigPath);
    await rm(kubeconfigPath);
    p = await startTestProvider({
      files: { kubeconfig },
      config: providerConfigYaml({
        versionKey: 'access-version-key-0123456789',
        stores: [
          { name: 'scoped', backend: 'kubernetes', kubeconfig: '../kubeconfig', cache: { ttl: 0 }, access: [{ allow: { refs: ['{namespace}/**'] } }] },
          { name: 'open', backend: 'kubernetes', kubeconfig: '../kubeconfig', cache: { ttl: 0 } },
        ],
      }),
    });
  });
  afterAll(async () => {
    await p?.stop();
    await api?.close();
    canaries.expectNoneIn(p.logs, 'provider logs');
    canaries.expectNoneIn(errors, 'gRPC error messages');
  });

  it('a pod reads a Secret of its own namespace through both stores', async () => {
    const reply = await p.client.mount(
      driverRequest('- {name: a, store: scoped, ref: shop/db, key: password}\n- {name: b, store: open, ref: shop/db, key: password}', pod('shop', 'app')),
    );
    expect(fileMap(reply).get('a')?.contents.toString()).toBe(shopDb);
    expect(fileMap(reply).get('b')?.contents.toString()).toBe(shopDb);
  });

  it("access rules refuse another namespace's Secret before the API server is asked", async () => {
    const before = api.requests.length;
    const err = await p.client.mountError(driverRequest('- {name: a, store: scoped, ref: web/db, key: password}', pod('shop', 'app')));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toContain('objects[0] "a" (store scoped, ref web/db)');
    expect(err.details).toContain('service account shop/app');
    expect(api.requests.length).toBe(before);
  });

  it("the API server's RBAC refuses another namespace's Secret (403) when no access rule does", async () => {
    for (const [ns, ref] of [['shop', 'web/db'], ['web', 'shop/db'], ['shop', 'platform/root-key']] as const) {
      const before = api.requests.length;
      const err = await p.client.mountError(driverRequest(`- {name: a, store: open, ref: ${ref}, key: password}`, pod(ns, 'app')));
      errors.push(err.details);
      expect(err.code).toBe(status.PERMISSION_DENIED);
      expect(err.details).toContain(`(store open, ref ${ref})`);
      expect(err.details).toContain(`service account ${ns}/app`);
      const asked = api.requests.slice(before);
      expect(asked.some((r) => r.status === 403 && r.user === serviceAccountUser(ns, 'app'))).toBe(true);
    }
  });

  it('the pod cannot borrow another identity: its token decides, not the attributes', async () => {
    // Attributes claim shop/app; the token is web/app's. The API server sees web/app and refuses.
    const forged = { ...pod('web', 'app'), namespace: 'shop', serviceAccount: 'app' };
    const err = await p.client.mountError(driverRequest('- {name: a, store: open, ref: shop/db, key: password}', forged));
    errors.push(err.details);
    expect(err.code).toBe(status.PERMISSION_DENIED);
  });
});
