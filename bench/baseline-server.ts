import { rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadProviderService } from '../src/server/grpc.js';

/**
 * The baseline: a bare grpc-js server answering Mount with a fixed response of the same shape and
 * size as the provider's, on the same kind of socket. The provider's overhead is measured against it.
 */
const [socketPath, filesJson] = process.argv.slice(2) as [string, string];
const files = (JSON.parse(filesJson) as Array<{ path: string; mode: number; contents: string }>).map((f) => ({
  ...f,
  contents: Buffer.from(f.contents, 'base64'),
}));
const reply = { files, objectVersion: files.map((f) => ({ id: f.path, version: 'v1' })) };
rmSync(socketPath, { force: true });
const server = new grpc.Server();
server.addService(loadProviderService(), {
  Version: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { version: 'v1alpha1', runtimeName: 'baseline', runtimeVersion: '0' }),
  Mount: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, reply),
});
server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
