import { randomBytes } from 'node:crypto';
import { lstat, unlink, chmod, readdir, rename } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { lazyAbort } from '../abort.js';
import { toProviderError } from '../errors.js';
import { protoPath } from '../package-info.js';
import type { MountResult } from '../mount/assemble.js';
import type { DriverMount } from './driver-mount.js';
import type { MountRequestMessage } from './request.js';
import { createHealthService } from './health.js';
import { toGrpcStatus } from './status.js';

export const apiVersion = 'v1alpha1';

export function loadProviderService(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(protoPath, { longs: String, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    v1alpha1: { CSIDriverProvider: grpc.ServiceClientConstructor };
  };
  return pkg.v1alpha1.CSIDriverProvider.service;
}

export interface GrpcServerDeps {
  readonly mount: DriverMount;
  readonly logger: Logger;
  readonly runtimeName: string;
  readonly runtimeVersion: string;
}

export interface GrpcServer {
  /** Binds the Unix socket (mode 0600), replacing a stale one. */
  listen(socketPath: string): Promise<void>;
  setServing(serving: boolean): void;
  /** Stops accepting calls and waits for in-flight ones up to `graceMs`, then cancels them. */
  drain(graceMs: number): Promise<void>;
  readonly inFlight: number;
}

export function createGrpcServer(deps: GrpcServerDeps): GrpcServer {
  const server = new grpc.Server({
    'grpc.max_send_message_length': 8 * 1024 * 1024,
    // Channelz keeps per-call statistics for a channelz service, which the provider does not serve:
    // counters, timestamps and closures on every call for nobody.
    'grpc.enable_channelz': 0,
  });
  const health = createHealthService({ '': 'NOT_SERVING', 'v1alpha1.CSIDriverProvider': 'NOT_SERVING' });
  health.addToServer(server);
  let inFlight = 0;
  let socket: { path: string; ino: number } | undefined;

  server.addService(withEncodedResponses(loadProviderService()), {
    Version(_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      callback(null, { version: apiVersion, runtimeName: deps.runtimeName, runtimeVersion: deps.runtimeVersion });
    },
    Mount(call: grpc.ServerUnaryCall<MountRequestMessage, unknown>, callback: grpc.sendUnaryData<unknown>) {
      inFlight += 1;
      // Its AbortController is made only if the Mount needs a store call (abort.ts).
      const aborter = lazyAbort();
      // grpc-js reports every call's stream closing as 'cancelled', answered ones too; aborting
      // those would build a DOMException with a stack trace per Mount for nothing.
      let answered = false;
      call.on('cancelled', () => answered || aborter.abort());
      const deadline = call.getDeadline();
      deps
        .mount(call.request, () => aborter.signal, deadline instanceof Date ? deadline.getTime() : deadline)
        .then(
          (result) => {
            answered = true;
            callback(null, responseOf(result));
          },
          (err: unknown) => {
            answered = true;
            const error = toProviderError(err);
            callback({ code: toGrpcStatus(error.code), details: error.message });
          },
        )
        .finally(() => {
          inFlight -= 1;
        });
    },
  });

  return {
    async listen(socketPath) {
      await checkReplaceable(socketPath);
      // libuv unlinks a listening Unix socket's path when the server closes, whatever file is there
      // by then: a stopping provider deleted the socket of the one that had replaced it (found by the
      // restart test, test/load). So bind a private name and rename it into place: the close then
      // unlinks only the private name, removeOwnSocket decides about the real one, and a stale
      // socket is replaced atomically, with no moment without a socket.
      // Not the pid alone: every pod's provider is pid 1 in its own PID namespace, and the
      // directory is shared by the node.
      const bindPath = join(dirname(socketPath), `.${basename(socketPath)}.${process.pid}-${randomBytes(4).toString('hex')}`);
      await removeDeadPrivateSockets(socketPath);
      // The socket is the only protection of the API: create it private, not just chmod it later.
      const previousUmask = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) =>
          server.bindAsync(`unix:${bindPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
        );
      } finally {
        process.umask(previousUmask);
      }
      await chmod(bindPath, 0o600);
      await rename(bindPath, socketPath);
      socket = { path: socketPath, ino: (await lstat(socketPath)).ino };
      deps.logger.info({ socket: socketPath }, 'listening');
    },
    setServing(serving) {
      const status = serving ? 'SERVING' : 'NOT_SERVING';
      health.setStatus('', status);
      health.setStatus('v1alpha1.CSIDriverProvider', status);
    },
    async drain(graceMs) {
      const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const timer = new Promise<'timeout'>((resolve) => setTimeout(resolve, graceMs, 'timeout').unref());
      if ((await Promise.race([drained, timer])) === 'timeout') {
        deps.logger.warn({ inFlight }, 'grace period over; cancelling in-flight calls');
        server.forceShutdown();
      }
      if (socket) await removeOwnSocket(socket);
    },
    get inFlight() {
      return inFlight;
    },
  };
}

const responses = new WeakMap<MountResult, object>();

/**
 * The driver's MountResponse for a volume. The handler returns the same MountResult for a Mount
 * whose values have not changed (mount/volume-memo.ts), and then gets the same response object, which
 * withEncodedResponses encodes only once. ObjectFile is {path, mode, contents}: the encoder reads
 * those fields as they are.
 */
function responseOf(result: MountResult): object {
  let response = responses.get(result);
  if (!response) responses.set(result, (response = { files: result.files, objectVersion: result.objectVersions }));
  return response;
}

/** Responses up to this size keep their encoding: larger ones are rarer, and would double their memory. */
const maxKeptEncoding = 64 * 1024;

/**
 * The service with Mount's response encoder remembering its output per response object (weakly:
 * it lives as long as the volume it encodes). Protobuf encoding of the response was about half of
 * what grpc-js did to answer a cache-hit Mount (2.5% of the provider's CPU samples). grpc-js copies
 * the encoded bytes into each frame, so one encoding can serve every Mount of the same volume.
 */
function withEncodedResponses(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const mount = service['Mount']!;
  const encode = mount.responseSerialize;
  const encoded = new WeakMap<object, Buffer>();
  const responseSerialize = (value: unknown): Buffer => {
    if (typeof value !== 'object' || value === null) return encode(value);
    let bytes = encoded.get(value);
    if (!bytes) {
      bytes = encode(value);
      if (bytes.length <= maxKeptEncoding) encoded.set(value, bytes);
    }
    return bytes;
  };
  return { ...service, Mount: { ...mount, responseSerialize } };
}

async function checkReplaceable(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info && !info.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
}

/**
 * A provider killed between bind and rename leaves its private name behind. Remove those nobody
 * listens on; one that accepts a connection belongs to a provider starting right now.
 */
async function removeDeadPrivateSockets(socketPath: string): Promise<void> {
  const dir = dirname(socketPath);
  const prefix = `.${basename(socketPath)}.`;
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith(prefix));
  for (const name of names) {
    const path = join(dir, name);
    const info = await lstat(path).catch(() => undefined);
    if (info?.isSocket() && !(await isListening(path))) await unlink(path).catch(() => undefined);
  }
}

/** Connection refused means no listener; anything else (or no answer soon) counts as alive. */
function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (alive: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(alive);
    };
    const timer = setTimeout(() => done(true), 500);
    socket.once('connect', () => done(true));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'));
  });
}

/** A new provider may already have bound the same path; only remove the socket we created. */
async function removeOwnSocket(socket: { path: string; ino: number }): Promise<void> {
  const info = await lstat(socket.path).catch(() => undefined);
  if (info?.ino === socket.ino) await unlink(socket.path).catch(() => undefined);
}
