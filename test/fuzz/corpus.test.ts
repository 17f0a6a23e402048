/**
 * The corpus of known-bad inputs (test/fixtures/bad-inputs/*.json), each sent through the real
 * socket as the driver would, each with the code it must produce. After every fixture the
 * provider must still answer a good Mount, and no prototype may have been polluted.
 *
 * Fixture fields (all optional except id, description, expect):
 * - `objects`: the objects parameter; `parameters`: more class parameters (strings);
 * - `rawMembers`: raw JSON members spliced into the attributes object (non-string values,
 *   duplicate keys, `__proto__`); `attributes`: the whole attributes string, verbatim;
 * - `tokens`: the serviceAccount.tokens attribute, verbatim; `secrets`, `permission`: verbatim;
 * - `pod`: {namespace, serviceAccount};
 * - `expect`: {code} with a code of src/errors.ts, or {code: "OK", files: [paths]}.
 * A text field may be a list of parts, where {"$repeat": text, "count": n} repeats text, so that
 * huge inputs stay small on disk.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { symlink } from 'node:fs/promises';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaries } from '../helpers/canary.js';
import type { MountRequest } from '../helpers/driver-client.js';
import { startTestProvider, type TestProvider } from '../helpers/provider.js';
import { volumeProblems } from './driver-rules.js';

type Text = string | Array<string | { $repeat: string; count: number }>;
interface Fixture {
  id: string;
  description: string;
  objects?: Text;
  parameters?: Record<string, string>;
  rawMembers?: Text;
  attributes?: Text;
  tokens?: Text;
  secrets?: Text;
  permission?: Text;
  pod?: { namespace?: string; serviceAccount?: string };
  expect: { code: string; files?: string[] };
}

const fixtureDir = join(import.meta.dirname, '../fixtures/bad-inputs');
const fixtures: Fixture[] = readdirSync(fixtureDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(fixtureDir, f), 'utf8')) as Fixture);

/** Expected gRPC status per code, written out here rather than taken from src/errors.ts. */
const grpcByCode: Record<string, status> = {
  InvalidArgument: status.INVALID_ARGUMENT,
  NotFound: status.NOT_FOUND,
  PermissionDenied: status.PERMISSION_DENIED,
  Unavailable: status.UNAVAILABLE,
  DeadlineExceeded: status.DEADLINE_EXCEEDED,
  Internal: status.INTERNAL,
};

function text(t: Text): string {
  return typeof t === 'string' ? t : t.map((p) => (typeof p === 'string' ? p : p.$repeat.repeat(p.count))).join('');
}

function buildRequest(f: Fixture): MountRequest {
  let attributes: string;
  if (f.attributes !== undefined) attributes = text(f.attributes);
  else {
    const members: Record<string, string> = {
      ...(f.objects === undefined ? {} : { objects: text(f.objects) }),
      ...f.parameters,
      secretProviderClass: 'corpus',
      'csi.storage.k8s.io/pod.name': 'app-0',
      'csi.storage.k8s.io/pod.namespace': f.pod?.namespace ?? 'shop',
      'csi.storage.k8s.io/pod.uid': '6f1c8a52-0000-4000-8000-000000000001',
      'csi.storage.k8s.io/serviceAccount.name': f.pod?.serviceAccount ?? 'default',
      'csi.storage.k8s.io/ephemeral': 'true',
      ...(f.tokens === undefined ? {} : { 'csi.storage.k8s.io/serviceAccount.tokens': text(f.tokens) }),
    };
    attributes = JSON.stringify(members);
    if (f.rawMembers !== undefined) attributes = `{${text(f.rawMembers)},${attributes.slice(1)}`;
  }
  return {
    attributes,
    secrets: f.secrets === undefined ? 'null' : text(f.secrets),
    targetPath: '/var/lib/kubelet/pods/6f1c8a52/volumes/kubernetes.io~csi/secrets/mount',
    permission: f.permission === undefined ? '420' : text(f.permission),
  };
}

const canaries = createCanaries();
const password = canaries.next('password');
const errors: string[] = [];
let p: TestProvider;

const goodMount = buildRequest({ id: 'good', description: 'good', objects: '- {name: ok, ref: shop/password}', expect: { code: 'OK' } });

beforeAll(async () => {
  p = await startTestProvider({
    config: `
defaultStore: files
versionKey: corpus-version-key-0123456789
stores:
  - name: files
    backend: file
    root: ../secrets
    cache: {ttl: 0}
  - name: big
    backend: file
    root: ../big
    maxBytes: 4194304
`,
    files: {
      'secrets/shop/password': password,
      'secrets/shop/db.json': `{"__proto__": {"polluted": ${JSON.stringify(canaries.next('proto'))}}, "password": ${JSON.stringify(canaries.next('db'))}}`,
      'secrets/shop/flat.json': JSON.stringify({ a: canaries.next('flat'), b: canaries.next('flat') }),
      'secrets/shop/proto.json': `{"__proto__": ${JSON.stringify(canaries.next('p'))}, "constructor": ${JSON.stringify(canaries.next('c'))}, "a": "x"}`,
      'secrets/shop/dotdot.json': JSON.stringify({ '..': canaries.next('dotdot'), a: 'y' }),
      'secrets/shop/empty-key.json': JSON.stringify({ '': canaries.next('empty'), a: 'y' }),
      'secrets/shop/deep.json': `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      'secrets/shop/deep-object.json': `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`,
      'secrets/shop/large': Buffer.alloc(1536 * 1024, 'l'),
      'big/a': Buffer.alloc(1536 * 1024, 'a'),
      'outside/secret': canaries.next('outside'),
    },
  });
  await symlink(join(p.dir, 'outside/secret'), join(p.dir, 'secrets/shop/escape'));
  await writeHostileNames(p);
});

/** Store-side names that `find` fixtures list: what a hostile or careless writer of the store can create. */
async function writeHostileNames(provider: TestProvider): Promise<void> {
  const value = () => canaries.next('hostile');
  await provider.write('secrets/hostile/backslash/a\\b', value());
  await provider.write('secrets/hostile/case/Token', value());
  await provider.write('secrets/hostile/case/token', value());
  await provider.write('secrets/hostile/dotdot/ok', 'ok');
  await provider.write('secrets/hostile/dotdot/..2026_01_01/ok', value());
  await symlink('..2026_01_01', join(provider.dir, 'secrets/hostile/dotdot/..data'));
  await provider.write('secrets/hostile/links/inside', 'inside');
  await symlink(join(provider.dir, 'outside/secret'), join(provider.dir, 'secrets/hostile/links/escape'));
  await symlink('.', join(provider.dir, 'secrets/hostile/links/loop'));
  await symlink(join(provider.dir, 'outside'), join(provider.dir, 'secrets/hostile/links/outside-dir'));
}

afterAll(async () => {
  const metrics = await p?.metrics.registry.metrics();
  await p?.stop();
  canaries.expectNoneIn(p.logs, 'provider logs');
  canaries.expectNoneIn(errors, 'gRPC error messages');
  canaries.expectNoneIn([metrics ?? ''], 'metrics');
});

describe('known-bad inputs through the socket', { timeout: 60_000 }, () => {
  it('has a corpus', () => {
    expect(fixtures.length).toBeGreaterThan(50);
    for (const f of fixtures) expect(Object.keys(grpcByCode).concat('OK')).toContain(f.expect.code);
  });

  it.each(fixtures.map((f) => [`${f.id}: ${f.description}`, f] as const))('%s', async (_title, f) => {
    const request = buildRequest(f);
    if (f.expect.code === 'OK') {
      const reply = await p.client.mount(request);
      expect(volumeProblems(reply.files)).toEqual([]);
      expect(reply.files.map((x) => x.path).sort()).toEqual([...(f.expect.files ?? [])].sort());
      expect(reply.objectVersion.length).toBeGreaterThan(0);
    } else {
      const err = await p.client.mountError(request);
      errors.push(err.details);
      expect({ code: err.code, details: err.details }).toMatchObject({ code: grpcByCode[f.expect.code] });
      expect(err.details.trim()).not.toBe('');
    }
    // Nothing leaked into the process: the provider runs in this process.
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // And it still serves.
    const good = await p.client.mount(goodMount);
    expect(good.files.map((x) => [x.path, x.contents.toString()])).toEqual([['ok', password]]);
  });
});
