import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as officialHealthProto } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHealthService, type HealthService } from '../../src/server/health.js';

/**
 * The provider's grpc.health.v1 service, encoded by hand, against a client built from the official
 * health.proto (shipped by grpc-health-check, a dev dependency here): what grpc-health-probe sends
 * and reads.
 */
type HealthClient = grpc.Client & Record<'Check' | 'Watch', Function>;

let dir: string;
let server: grpc.Server;
let health: HealthService;
let client: HealthClient;
let target: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-health-'));
  target = `unix:${join(dir, 'health.sock')}`;
  server = new grpc.Server();
  health = createHealthService({ '': 'NOT_SERVING', 'v1alpha1.CSIDriverProvider': 'NOT_SERVING' });
  health.addToServer(server);
  await new Promise<void>((resolve, reject) => server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(officialHealthProto, { enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (target: string, creds: grpc.ChannelCredentials) => HealthClient } } };
  };
  client = new pkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  server.forceShutdown();
  await rm(dir, { recursive: true, force: true });
});

const check = (service: string) =>
  new Promise<string>((resolve, reject) =>
    client.Check({ service }, { deadline: Date.now() + 5_000 }, (err: grpc.ServiceError | null, reply: { status: string }) => (err ? reject(err) : resolve(reply.status))),
  );

describe('grpc.health.v1 on the provider socket', () => {
  it('answers Check with each service status, and NOT_FOUND for a service it does not know', async () => {
    expect(await check('')).toBe('NOT_SERVING');
    health.setStatus('', 'SERVING');
    health.setStatus('v1alpha1.CSIDriverProvider', 'SERVING');
    expect(await check('')).toBe('SERVING');
    expect(await check('v1alpha1.CSIDriverProvider')).toBe('SERVING');
    await expect(check('no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('streams the status to a Watch, then each change, and SERVICE_UNKNOWN for an unknown service', async () => {
    health.setStatus('', 'SERVING');
    const seen: string[] = [];
    const call = client.Watch({ service: '' }) as grpc.ClientReadableStream<{ status: string }>;
    const twoUpdates = new Promise<void>((resolve) => call.on('data', (m: { status: string }) => seen.push(m.status) >= 2 && resolve()));
    call.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 50));
    health.setStatus('', 'NOT_SERVING');
    await twoUpdates;
    call.cancel();
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);

    const unknown = client.Watch({ service: 'no.such.Service' }) as grpc.ClientReadableStream<{ status: string }>;
    unknown.on('error', () => undefined);
    const [first] = (await new Promise((resolve) => unknown.once('data', (m) => resolve([m])))) as [{ status: string }];
    unknown.cancel();
    expect(first.status).toBe('SERVICE_UNKNOWN');
  });

  it('refuses a request that is not a HealthCheckRequest and keeps serving', async () => {
    const raw = new grpc.Client(target, grpc.credentials.createInsecure());
    const garbage = Buffer.from([0x0a, 0x7f, 0x41]); // field 1, length 127, one byte of it
    const refused = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, garbage, (err) => resolve(err)),
    );
    raw.close();
    expect(refused?.code).toBeDefined();
    expect(refused?.code).not.toBe(grpc.status.OK);
    health.setStatus('', 'SERVING');
    expect(await check('')).toBe('SERVING');
  });
});
