/**
 * Proves the Google test server faithful: Google's own clients read through it. The official
 * google-auth-library IdentityPoolClient exchanges a pod token at its STS and impersonates a
 * service account at its IAM credentials API; @google-cloud/secret-manager in REST mode reads
 * global and regional secrets with that client. The server speaks plain HTTP here: the auth
 * library's STS client builds its own HTTP transport, which takes no CA (Google's emulators are
 * plain HTTP for the same reason); the backend's tests cover TLS.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { IdentityPoolClient } from 'google-auth-library';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { crc32c } from '../../src/backends/gcp/crc32c.js';
import { startGcpTestServer, type GcpTestServer } from '../servers/gcp.js';

const reader = 'shop-reader@shop-prod.iam.gserviceaccount.com';
let gcp: GcpTestServer;
let dir: string;

beforeAll(async () => {
  gcp = await startGcpTestServer({ http: true });
  dir = await mkdtemp(join(tmpdir(), 'usp-gcp-official-'));
  const app = gcp.federatedMember('shop', 'app');
  gcp.addVersion('db', 'first');
  gcp.addVersion('db', 'second');
  gcp.setAlias('db', 'stable', 1);
  gcp.addVersion('regional', 'in europe', { location: 'europe-west1' });
  gcp.addVersion('impersonated', 'for the reader');
  gcp.grantAccess(app, 'db');
  gcp.grantAccess(app, 'regional', { location: 'europe-west1' });
  gcp.addServiceAccount(reader);
  gcp.grantTokenCreator(app, reader);
  gcp.grantAccess(`serviceAccount:${reader}`, 'impersonated');
});

afterAll(async () => {
  await gcp?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** An IdentityPoolClient reading the pod token from a file, as a pod's credential configuration does. */
async function identityPoolClient(options: { impersonate?: string; tokenAudience?: string } = {}): Promise<IdentityPoolClient> {
  const tokenFile = join(dir, `token-${Math.random().toString(36).slice(2)}`);
  await writeFile(tokenFile, gcp.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: options.tokenAudience ?? gcp.poolAudience }).token);
  return new IdentityPoolClient({
    type: 'external_account',
    audience: gcp.poolAudience,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    token_url: `${gcp.url}/v1/token`,
    credential_source: { file: tokenFile },
    ...(options.impersonate
      ? { service_account_impersonation_url: `${gcp.url}/v1/projects/-/serviceAccounts/${options.impersonate}:generateAccessToken` }
      : {}),
  });
}

function secretManager(authClient: IdentityPoolClient): SecretManagerServiceClient {
  const { hostname, port } = new URL(gcp.url);
  // google-gax pins its own google-auth-library (10.5.0): the same class, another copy's private fields.
  const client = authClient as unknown as NonNullable<ConstructorParameters<typeof SecretManagerServiceClient>[0]>['authClient'];
  return new SecretManagerServiceClient({ fallback: true, authClient: client, apiEndpoint: hostname, port: Number(port), protocol: 'http' });
}

function payloadOf(response: { name?: string | null; payload?: { data?: unknown; dataCrc32c?: unknown } | null }) {
  const data = Buffer.from(response.payload?.data as Uint8Array);
  return { name: response.name, text: data.toString('utf8'), checksum: Number(String(response.payload?.dataCrc32c)), crc: crc32c(data) };
}

it('exchanges a pod token at STS with the official IdentityPoolClient', async () => {
  const client = await identityPoolClient();
  const before = gcp.counters.exchanges;
  const { token } = await client.getAccessToken();
  expect(token).toMatch(/^ya29\.fed-/);
  expect(gcp.counters.exchanges - before).toBe(1);
  expect(gcp.requests.at(-1)).toMatchObject({ path: '/v1/token', status: 200 });
});

it('gives the official client an OAuth error it understands when the audience is wrong', async () => {
  const client = await identityPoolClient({ tokenAudience: 'not-the-pool' });
  await expect(client.getAccessToken()).rejects.toThrow(/invalid_grant/);
});

it('reads global, aliased and regional secrets with @google-cloud/secret-manager over REST, checksums included', async () => {
  const sm = secretManager(await identityPoolClient());
  try {
    const [latest] = await sm.accessSecretVersion({ name: 'projects/shop-prod/secrets/db/versions/latest' });
    const latestPayload = payloadOf(latest);
    expect(latestPayload).toMatchObject({ name: `projects/${gcp.projectNumber}/secrets/db/versions/2`, text: 'second' });
    expect(latestPayload.checksum).toBe(latestPayload.crc);
    const [alias] = await sm.accessSecretVersion({ name: 'projects/shop-prod/secrets/db/versions/stable' });
    expect(payloadOf(alias)).toMatchObject({ name: `projects/${gcp.projectNumber}/secrets/db/versions/1`, text: 'first' });
    const [regional] = await sm.accessSecretVersion({ name: 'projects/shop-prod/locations/europe-west1/secrets/regional/versions/latest' });
    expect(payloadOf(regional)).toMatchObject({ name: `projects/${gcp.projectNumber}/locations/europe-west1/secrets/regional/versions/1`, text: 'in europe' });
  } finally {
    await sm.close();
  }
});

it('impersonates a service account with the official client and reads as it', async () => {
  const sm = secretManager(await identityPoolClient({ impersonate: reader }));
  try {
    const before = gcp.counters.impersonations;
    const [response] = await sm.accessSecretVersion({ name: 'projects/shop-prod/secrets/impersonated/versions/latest' });
    expect(payloadOf(response).text).toBe('for the reader');
    expect(gcp.counters.impersonations - before).toBe(1);
    expect(gcp.requests.at(-1)?.members).toEqual([`serviceAccount:${reader}`]);
  } finally {
    await sm.close();
  }
});

/** What the official client surfaces for an error answer: the HTTP status and Google's google.rpc.Status. */
async function rpcFailure(promise: Promise<unknown>): Promise<{ httpStatus: number; code: number; status: string; message: string }> {
  const err = (await promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  )) as { status?: number; code?: number; message: string };
  const body = JSON.parse(err.message) as { error: { code: number; status: string; message: string } };
  return { httpStatus: err.status ?? 0, ...body.error };
}

it('answers errors as google.rpc.Status, which reaches the official client intact', async () => {
  const sm = secretManager(await identityPoolClient());
  try {
    expect(await rpcFailure(sm.accessSecretVersion({ name: 'projects/shop-prod/secrets/impersonated/versions/latest' }))).toMatchObject({
      httpStatus: 403,
      code: 403,
      status: 'PERMISSION_DENIED',
    });
    expect(await rpcFailure(sm.accessSecretVersion({ name: 'projects/shop-prod/secrets/db/versions/9' }))).toMatchObject({ httpStatus: 404, status: 'NOT_FOUND' });
    gcp.setState('db', 1, 'DISABLED');
    expect(await rpcFailure(sm.accessSecretVersion({ name: 'projects/shop-prod/secrets/db/versions/1' }))).toMatchObject({
      httpStatus: 400,
      status: 'FAILED_PRECONDITION',
      message: `Secret Version [projects/${gcp.projectNumber}/secrets/db/versions/1] is in DISABLED state.`,
    });
  } finally {
    gcp.setState('db', 1, 'ENABLED');
    await sm.close();
  }
});

it('hands the official client a corrupted payload it does not check (why the backend verifies dataCrc32c)', async () => {
  const sm = secretManager(await identityPoolClient());
  try {
    gcp.corruptChecksums(1);
    const [response] = await sm.accessSecretVersion({ name: 'projects/shop-prod/secrets/db/versions/latest' });
    const payload = payloadOf(response);
    expect(payload.text).toBe('second');
    expect(payload.checksum).not.toBe(payload.crc);
  } finally {
    gcp.corruptChecksums(0);
    await sm.close();
  }
});

it('takes the exchange as JSON too, as GKE\'s identitybindingtoken path sends it', async () => {
  const subjectToken = gcp.issuePodToken({ namespace: 'shop', serviceAccount: 'app', audience: gcp.gkeTokenAudience }).token;
  const res = await fetch(`${gcp.url}/v1/identitybindingtoken`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      audience: gcp.gkeAudience,
      scope: 'https://www.googleapis.com/auth/cloud-platform',
      requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      subject_token: subjectToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    }),
  });
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ token_type: 'Bearer', expires_in: 3600, access_token: expect.stringMatching(/^ya29\./) });
});
