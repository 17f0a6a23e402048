/**
 * The gcp-secret-manager backend against the protocol-faithful Google test server: checksums,
 * token exchange and impersonation, the token cache and its boundaries, refs and versions, and
 * the errors users see.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '../../src/backends/gcp/crc32c.js';
import { gcpSecretManagerBackend } from '../../src/backends/gcp/index.js';
import { accessPath, parseSecretRef } from '../../src/backends/gcp/refs.js';
import { ProviderError } from '../../src/errors.js';
import { parseOrThrow } from '../../src/schema.js';
import { createCanaries } from '../helpers/canary.js';
import { createClock, startGcpWorld, textOf, type GcpWorld } from './fixture.js';

const canaries = createCanaries();
const clock = createClock();
const errors: string[] = [];
let w: GcpWorld;

const values = {
  v1: canaries.next('db-v1'),
  v2: canaries.next('db-v2'),
  regional: canaries.next('regional'),
  reader: canaries.next('reader-only'),
  other: canaries.next('other-team'),
};

beforeAll(async () => {
  w = await startGcpWorld({ now: clock.now });
  const { gcp } = w;
  gcp.addVersion('db', values.v1);
  gcp.addVersion('db', values.v2);
  gcp.addVersion('regional', values.regional, { location: 'europe-west1' });
  gcp.addVersion('reader-only', values.reader);
  gcp.addVersion('other-team', values.other);
  gcp.addVersion('states', canaries.next('states-1'));
  gcp.addVersion('states', canaries.next('states-2'));
  gcp.addVersion('states', canaries.next('states-3'));
  gcp.setState('states', 1, 'DESTROYED');
  gcp.setState('states', 3, 'DISABLED');
  gcp.setAlias('db', 'stable', 1);
  const app = gcp.federatedMember('shop', 'app');
  for (const secret of ['db', 'states', 'gone']) gcp.grantAccess(app, secret);
  gcp.grantAccess(app, 'regional', { location: 'europe-west1' });
  gcp.grantAccess(gcp.federatedMember('team', 'app'), 'other-team');
  gcp.grantAccess(gcp.federatedMember('shop', 'app', { gke: true }), 'db');
  for (const email of ['shop-reader@shop-prod.iam.gserviceaccount.com', 'hop@shop-prod.iam.gserviceaccount.com', 'nobody@shop-prod.iam.gserviceaccount.com']) {
    gcp.addServiceAccount(email);
  }
  gcp.grantTokenCreator(app, 'shop-reader@shop-prod.iam.gserviceaccount.com');
  gcp.grantTokenCreator(app, 'hop@shop-prod.iam.gserviceaccount.com');
  gcp.grantTokenCreator('serviceAccount:hop@shop-prod.iam.gserviceaccount.com', 'nobody@shop-prod.iam.gserviceaccount.com');
  gcp.grantAccess('serviceAccount:shop-reader@shop-prod.iam.gserviceaccount.com', 'reader-only');
  gcp.grantAccess('serviceAccount:nobody@shop-prod.iam.gserviceaccount.com', 'reader-only');
});

afterAll(async () => {
  await w?.close();
  canaries.add(...(w?.gcp.issuedTokens ?? []));
  canaries.expectNoneIn(errors, 'error messages');
});

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProviderError);
  errors.push((err as ProviderError).message);
  return err as ProviderError;
}

describe('CRC32C', () => {
  it('is Castagnoli, not zlib CRC-32', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
  });
});

describe('checksums', () => {
  it('refuses a payload whose CRC32C does not match, as a transient outage, and reads it intact next time', async () => {
    const store = await w.store();
    w.gcp.corruptChecksums(1);
    const err = await failure(w.fetch(store, { ref: 'db' }));
    expect(err.code).toBe('Unavailable');
    expect(err.transient).toBe(true);
    expect(err.message).toContain('CRC32C');
    expect(err.message).not.toContain(values.v2);
    expect(textOf(await w.fetch(store, { ref: 'db' }))).toBe(values.v2);
  });
});

describe('refs and versions', () => {
  const opts = { project: 'shop-prod', location: undefined };
  it('reads short, global and regional refs, with a version in the ref or the object', () => {
    expect(parseSecretRef('db', undefined, opts)).toEqual({ project: 'shop-prod', secret: 'db', version: 'latest' });
    expect(parseSecretRef('projects/p-1234/secrets/db', '3', opts)).toEqual({ project: 'p-1234', secret: 'db', version: '3' });
    expect(parseSecretRef('projects/42/locations/europe-west1/secrets/db/versions/stable', undefined, opts)).toEqual({
      project: '42',
      location: 'europe-west1',
      secret: 'db',
      version: 'stable',
    });
    expect(parseSecretRef('db', undefined, { project: 'shop-prod', location: 'us-east4' }).location).toBe('us-east4');
    expect(parseSecretRef('projects/p-1234/secrets/db', undefined, { project: 'shop-prod', location: 'us-east4' }).location).toBeUndefined();
  });

  it('refuses malformed refs and conflicting versions, naming the problem', () => {
    const bad = (ref: string, version?: string, project: string | null = 'shop-prod') => {
      try {
        parseSecretRef(ref, version, { project: project ?? undefined, location: undefined });
      } catch (err) {
        expect(err).toBeInstanceOf(ProviderError);
        expect((err as ProviderError).code).toBe('InvalidArgument');
        return (err as ProviderError).message;
      }
      throw new Error(`accepted ${ref}`);
    };
    expect(bad('projects/p/db')).toContain('projects/P/secrets/S');
    expect(bad('a/b')).toContain('ref must be');
    expect(bad('db', undefined, null)).toContain('names no project');
    expect(bad('projects/p-1234/secrets/db/versions/2', '3')).toContain('set one');
    expect(bad('db', '0')).toContain('version "0"');
    expect(bad('projects/p-1234/locations/EU/secrets/db')).toContain('location');
  });

  it('turns any ref and version into a safe access path or an InvalidArgument (fuzzed)', () => {
    const segment = fc.oneof(fc.constantFrom('projects', 'locations', 'secrets', 'versions', 'latest', '..', '.', '', 'p-1234', '42', 'eu-west1', 'db'), fc.string({ maxLength: 12 }));
    const ref = fc.oneof(fc.string({ maxLength: 40 }), fc.array(segment, { maxLength: 9 }).map((parts) => parts.join('/')));
    const version = fc.option(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('latest', '1', '0', '007', 'stable', '1/2', '%2e')), { nil: undefined });
    const safe = /^\/v1\/projects\/[a-z0-9.:-]+(\/locations\/[a-z0-9-]+)?\/secrets\/[A-Za-z0-9_-]+\/versions\/[A-Za-z0-9_-]+:access$/;
    fc.assert(
      fc.property(ref, version, fc.constantFrom('shop-prod', undefined), fc.constantFrom('europe-west1', undefined), (r, v, project, location) => {
        try {
          const path = accessPath(parseSecretRef(r, v, { project, location }));
          expect(path).toMatch(safe);
          expect(path.split('/')).not.toContain('..');
        } catch (err) {
          expect(err).toBeInstanceOf(ProviderError);
          expect((err as ProviderError).code).toBe('InvalidArgument');
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('returns the version the answer names: a pinned number, an alias, latest', async () => {
    const store = await w.store();
    const latest = await w.fetch(store, { ref: 'db' });
    expect([textOf(latest), latest.version]).toEqual([values.v2, '2']);
    const alias = await w.fetch(store, { ref: 'db', version: 'stable' });
    expect([textOf(alias), alias.version]).toEqual([values.v1, '1']);
    const byNumber = await w.fetch(store, { ref: `projects/${w.gcp.projectNumber}/secrets/db/versions/1` });
    expect(byNumber.version).toBe('1');
  });

  it('says when the version is disabled or destroyed, and that latest is the newest even when disabled', async () => {
    const store = await w.store();
    const destroyed = await failure(w.fetch(store, { ref: 'states', version: '1' }));
    expect([destroyed.code, destroyed.message]).toEqual(['NotFound', expect.stringContaining('version 1 of projects/shop-prod/secrets/states is destroyed')]);
    const latest = await failure(w.fetch(store, { ref: 'states' }));
    expect([latest.code, latest.message]).toEqual(['NotFound', expect.stringContaining('the latest version of projects/shop-prod/secrets/states is disabled')]);
    expect(textOf(await w.fetch(store, { ref: 'states', version: '2' }))).toMatch(/^CANARY-states-2/);
  });

  it('fails a missing secret or version with NotFound', async () => {
    const store = await w.store();
    expect((await failure(w.fetch(store, { ref: 'gone' }))).code).toBe('NotFound');
    expect((await failure(w.fetch(store, { ref: 'db', version: '9' }))).code).toBe('NotFound');
  });

  it('reads a regional secret on the regional path, through the store location or the ref', async () => {
    const regional = await w.store({ location: 'europe-west1' });
    expect(textOf(await w.fetch(regional, { ref: 'regional' }))).toBe(values.regional);
    const global = await w.store();
    expect(textOf(await w.fetch(global, { ref: 'projects/shop-prod/locations/europe-west1/secrets/regional' }))).toBe(values.regional);
    expect(w.gcp.requests.filter((r) => r.path.includes('/locations/europe-west1/secrets/regional/')).length).toBe(2);
  });
});

describe('tokens', () => {
  it('exchanges once for a burst of reads', async () => {
    const store = await w.store();
    const before = w.gcp.counters.exchanges;
    const results = await Promise.all(Array.from({ length: 20 }, () => w.fetch(store, { ref: 'db' })));
    expect(results.map(textOf)).toEqual(Array(20).fill(values.v2));
    expect(w.gcp.counters.exchanges - before).toBe(1);
  });

  it('never lends one service account\'s token to another', async () => {
    const store = await w.store();
    expect(textOf(await w.fetch(store, { ref: 'db' }))).toBe(values.v2);
    // Same name in another namespace: a different Kubernetes service account.
    const denied = await failure(w.fetch(store, { ref: 'db' }, { namespace: 'team' }));
    expect(denied.code).toBe('PermissionDenied');
    expect(textOf(await w.fetch(store, { ref: 'other-team' }, { namespace: 'team' }))).toBe(values.other);
    expect((await failure(w.fetch(store, { ref: 'other-team' }))).code).toBe('PermissionDenied');
    const readers = new Set(w.gcp.requests.filter((r) => r.path.endsWith(':access')).map((r) => r.members.join()));
    expect(readers).toContain(w.gcp.federatedMember('team', 'app'));
    expect(readers).toContain(w.gcp.federatedMember('shop', 'app'));
  });

  it('keeps a token until shortly before it expires', async () => {
    const store = await w.store();
    const before = w.gcp.counters.exchanges;
    await w.fetch(store, { ref: 'db' });
    clock.advance(50 * 60_000);
    await w.fetch(store, { ref: 'db' });
    expect(w.gcp.counters.exchanges - before).toBe(1);
    clock.advance(6 * 60_000);
    await w.fetch(store, { ref: 'db' });
    expect(w.gcp.counters.exchanges - before).toBe(2);
  });

  it('exchanges again, within the attempt, when Google stops accepting a cached token', async () => {
    const store = await w.store({ serviceAccount: 'shop-reader@shop-prod.iam.gserviceaccount.com' });
    await w.fetch(store, { ref: 'reader-only' });
    const before = { ...w.gcp.counters };
    w.gcp.revokeTokens();
    expect(textOf(await w.fetch(store, { ref: 'reader-only' }))).toBe(values.reader);
    expect([w.gcp.counters.exchanges - before.exchanges, w.gcp.counters.impersonations - before.impersonations]).toEqual([1, 1]);
  });

  it('names the audience and the pod\'s subject when STS refuses the pod token', async () => {
    const store = await w.store();
    const err = await failure(w.fetch(store, { ref: 'db' }, { tokenAudience: 'something-else' }));
    expect(err.code).toBe('PermissionDenied');
    expect(err.message).toContain(`audience "${w.gcp.poolAudience}"`);
    expect(err.message).toContain('system:serviceaccount:shop:app');
    expect(err.message).toContain('invalid_grant');
  });

  it('names the principal that may not read', async () => {
    const store = await w.store();
    const err = await failure(w.fetch(store, { ref: 'reader-only' }));
    expect(err.code).toBe('PermissionDenied');
    expect(err.message).toContain(`${w.gcp.federatedMember('shop', 'app')} may not access projects/shop-prod/secrets/reader-only`);
    expect(err.message).toContain('roles/secretmanager.secretAccessor');
  });

  it('works with the GKE identity namespace, presenting a token for PROJECT.svc.id.goog', async () => {
    const store = await w.store({ audience: w.gcp.gkeAudience });
    const options = parseOrThrow(gcpSecretManagerBackend.options, { audience: w.gcp.gkeAudience }, 'stores[0]');
    expect(gcpSecretManagerBackend.audiences(options)).toEqual([w.gcp.gkeTokenAudience]);
    expect(textOf(await w.fetch(store, { ref: 'db' }, { audience: w.gcp.gkeTokenAudience }))).toBe(values.v2);
  });
});

describe('impersonation', () => {
  it('impersonates the store\'s service account, filled from the pod, once per burst', async () => {
    const store = await w.store({ serviceAccount: '{namespace}-reader@shop-prod.iam.gserviceaccount.com' });
    const before = { ...w.gcp.counters };
    const results = await Promise.all(Array.from({ length: 5 }, () => w.fetch(store, { ref: 'reader-only' })));
    expect(results.map(textOf)).toEqual(Array(5).fill(values.reader));
    expect(w.gcp.counters.exchanges - before.exchanges).toBe(1);
    expect(w.gcp.counters.impersonations - before.impersonations).toBe(1);
  });

  it('names the service account and the missing role when impersonation is refused', async () => {
    const store = await w.store({ serviceAccount: '{namespace}-reader@shop-prod.iam.gserviceaccount.com' });
    const err = await failure(w.fetch(store, { ref: 'reader-only' }, { namespace: 'team' }));
    expect(err.code).toBe('PermissionDenied');
    expect(err.message).toContain('team-reader@shop-prod.iam.gserviceaccount.com');
    expect(err.message).toContain('roles/iam.workloadIdentityUser');
  });

  it('follows a delegation chain, and fails where a link lacks Token Creator', async () => {
    const chained = await w.store({ serviceAccount: 'nobody@shop-prod.iam.gserviceaccount.com', delegates: ['hop@shop-prod.iam.gserviceaccount.com'] });
    expect(textOf(await w.fetch(chained, { ref: 'reader-only' }))).toBe(values.reader);
    const direct = await w.store({ serviceAccount: 'nobody@shop-prod.iam.gserviceaccount.com' });
    expect((await failure(w.fetch(direct, { ref: 'reader-only' }))).code).toBe('PermissionDenied');
  });

  it('lets an object name a service account only where the store\'s pattern allows it', async () => {
    const spec = { serviceAccount: 'shop-reader@shop-prod.iam.gserviceaccount.com' };
    const closed = await w.store();
    const refused = await failure(w.fetch(closed, { ref: 'reader-only', spec }));
    expect([refused.code, refused.message]).toEqual(['PermissionDenied', expect.stringContaining('lets no object choose')]);
    const open = await w.store({ serviceAccountPattern: '{namespace}-*@shop-prod.iam.gserviceaccount.com' });
    expect(textOf(await w.fetch(open, { ref: 'reader-only', spec }))).toBe(values.reader);
    const other = await failure(w.fetch(open, { ref: 'reader-only', spec }, { namespace: 'team' }));
    expect([other.code, other.message]).toEqual(['PermissionDenied', expect.stringContaining('not allowed for service account team/app')]);
  });
});

describe('throttling and store options', () => {
  it('reports 429 RESOURCE_EXHAUSTED as a transient failure', async () => {
    const store = await w.store();
    await w.fetch(store, { ref: 'db' });
    w.gcp.setAccessQuota(0);
    try {
      const err = await failure(w.fetch(store, { ref: 'db' }));
      expect([err.code, err.transient]).toEqual(['Unavailable', true]);
      expect(err.message).toContain('RESOURCE_EXHAUSTED');
    } finally {
      w.gcp.setAccessQuota(Infinity);
    }
  });

  it('checks options across fields', () => {
    const check = (raw: Record<string, unknown>) =>
      gcpSecretManagerBackend.checkStore!({ name: 'gcp', options: parseOrThrow(gcpSecretManagerBackend.options, raw, 'stores[0]'), restrictsNamespaces: false });
    expect(check({ audience: w.gcp.poolAudience, delegates: ['a@p.iam.gserviceaccount.com'] })).toEqual([expect.stringMatching(/^delegates:/)]);
    expect(check({ audience: w.gcp.poolAudience, location: 'europe-west1' })).toEqual([expect.stringMatching(/^location:/)]);
    expect(() => parseOrThrow(gcpSecretManagerBackend.options, { audience: 'sts.googleapis.com' }, 'stores[0]')).toThrow(/stores\[0\]\.audience: must be/);
    expect(check({ audience: w.gcp.poolAudience, tls: { caFile: 'ca.pem' } })).toEqual([expect.stringMatching(/^tls: applies to overridden endpoints only/)]);
  });

  it('verifies overridden endpoints with tls.caFile only: without it the test CA is not trusted, and retrying cannot help', async () => {
    const store = await w.store({ tls: undefined });
    const err = await failure(w.fetch(store, { ref: 'db' }));
    expect([err.code, err.transient]).toEqual(['Unavailable', false]);
    expect(err.message).toContain('cannot verify the TLS certificate of Google STS');
    expect(err.message).toContain('check tls.caFile and endpoints');
  });
});
