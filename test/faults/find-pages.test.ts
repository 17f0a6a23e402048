/**
 * The fault matrix for `find`: a listing that fails on page two fails the whole Mount (nothing
 * partial is mounted), with the store's code and the find object named, and the provider serves
 * the same find once the store recovers. Pages: Kubernetes `continue` (50 a page), Vault one LIST
 * per folder, Secrets Manager BatchGetSecretValue (20 a page), SSM GetParametersByPath (10 a page).
 */
import { status } from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driverRequest, type MountRequest } from '../helpers/driver-client.js';
import { serviceAccountUser } from '../servers/kubernetes.js';
import { startFaultWorld, type FaultWorld } from './fixture.js';

let w: FaultWorld;
const counts = { kube: 55, vault: 2, sm: 25, ssm: 15 };

beforeAll(async () => {
  w = await startFaultWorld();
  for (let i = 0; i < counts.kube; i += 1) w.kube.putSecret({ namespace: 'shop', name: `page-${i}`, data: { v: String(i) } });
  w.kube.allow({ subject: serviceAccountUser('shop', 'app'), namespace: 'shop', resource: 'secrets', verbs: ['list'] });
  w.vault.writeKv('secret', 'shop/pages/a/one', { v: '1' });
  w.vault.writeKv('secret', 'shop/pages/b/two', { v: '2' });
  w.vault.definePolicy('app', { 'secret/data/shop/*': ['read'], 'secret/metadata/shop/*': ['list'] });
  for (let i = 0; i < counts.sm; i += 1) w.aws.putSecret(`shop/page-${String(i).padStart(2, '0')}`, String(i));
  for (let i = 0; i < counts.ssm; i += 1) w.aws.putParameter(`/shop/pages/p${String(i).padStart(2, '0')}`, String(i));
}, 60_000);

afterAll(async () => {
  await w?.close();
  w.canaries.expectNoneIn(w.p.logs, 'provider logs');
  w.canaries.expectNoneIn(w.errors, 'gRPC error details');
});

const finds = {
  kube: { prefix: 'page-', limit: 100 },
  vault: { prefix: 'secret/shop/pages/', recursive: true },
  sm: { prefix: 'shop/page-' },
  ssm: { prefix: '/shop/pages/' },
} as const;

type ListingStore = keyof typeof finds;

/** The fault world's request for the store, with a find object instead of its single one. */
function findRequest(store: ListingStore): MountRequest {
  const base = w.request(store);
  const attributes = JSON.parse(base.attributes) as Record<string, string>;
  const request = driverRequest(stringify([{ name: 'found', store, find: finds[store] }]), {});
  return { ...request, attributes: JSON.stringify({ ...attributes, objects: JSON.parse(request.attributes).objects }) };
}

/** Breaks the second page and every retry of it; the first page answers. */
function breakPageTwo(store: ListingStore): void {
  if (store === 'kube') w.kube.inject({ kind: 'status', status: 503 }, { match: /continue/, times: Infinity });
  if (store === 'vault') w.vault.inject({ kind: 'status', status: 503 }, { match: '/v1/secret/metadata/shop/pages/b', times: Infinity });
  // The last page is the one without a NextToken.
  const lastPageBroken = (real: Record<string, unknown>) => (real['NextToken'] ? real : { ...real, NextToken: 7 });
  if (store === 'sm') w.aws.answerWith(lastPageBroken, { match: /BatchGetSecretValue/, times: Infinity });
  if (store === 'ssm') w.aws.answerWith(lastPageBroken, { match: /GetParametersByPath/, times: Infinity });
}

function repair(): void {
  w.clearFaults();
  w.aws.clearAnswers();
}

describe.each(Object.keys(finds) as ListingStore[])('find on store %s', (store) => {
  it('fails the whole Mount when page two fails, and serves the full set once the store recovers', async () => {
    breakPageTwo(store);
    const err = await w.p.client.mountError(findRequest(store), 20_000);
    w.errors.push(err.details);
    repair();
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain(`objects[0] "found" (store ${store}, find prefix ${JSON.stringify(finds[store].prefix)})`);
    const reply = await w.p.client.mount(findRequest(store));
    expect(reply.files.length).toBe(counts[store]);
  });
});
