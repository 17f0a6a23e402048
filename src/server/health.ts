import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs/minimal.js';

/**
 * The standard gRPC health service (grpc.health.v1.Health: Check and Watch) on the provider's
 * socket, for `grpc-health-probe` and other clients of that protocol.
 *
 * Its two messages have one field each, so they are encoded here with protobufjs's wire reader and
 * writer (already loaded for the provider's own service) instead of parsing health.proto at start:
 * loading that .proto through proto-loader cost every node about 4 MiB of idle RSS
 * (docs/performance.md). test/provider/lifecycle.test.ts checks this against the official proto.
 */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** HealthCheckResponse.ServingStatus numbers, as in the official health.proto. */
const statusNumbers = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
type WireStatus = keyof typeof statusNumbers;

export interface HealthService {
  setStatus(service: string, status: ServingStatus): void;
  addToServer(server: grpc.Server): void;
}

export function createHealthService(initial: Record<string, ServingStatus>): HealthService {
  const statuses = new Map<string, ServingStatus>(Object.entries(initial));
  const watchers = new Map<string, Set<grpc.ServerWritableStream<HealthRequest, WireStatus>>>();

  const handlers = {
    Check(call: grpc.ServerUnaryCall<HealthRequest, WireStatus>, callback: grpc.sendUnaryData<WireStatus>) {
      const status = statuses.get(call.request.service);
      if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      else callback(null, status);
    },
    Watch(call: grpc.ServerWritableStream<HealthRequest, WireStatus>) {
      const { service } = call.request;
      let set = watchers.get(service);
      if (!set) watchers.set(service, (set = new Set()));
      set.add(call);
      call.on('cancelled', () => {
        set.delete(call);
        if (set.size === 0) watchers.delete(service);
      });
      call.write(statuses.get(service) ?? 'SERVICE_UNKNOWN');
    },
  };

  return {
    setStatus(service, status) {
      if (statuses.get(service) === status) return;
      statuses.set(service, status);
      for (const call of watchers.get(service) ?? []) call.write(status);
    },
    addToServer(server) {
      server.addService(healthServiceDefinition, handlers);
    },
  };
}

const path = (method: string) => `/grpc.health.v1.Health/${method}`;
const method = { requestSerialize: encodeRequest, requestDeserialize: decodeRequest, responseSerialize: encodeResponse, responseDeserialize: decodeResponse };

/** The service as grpc-js describes one; the client half (serialize request) serves tests and tools. */
export const healthServiceDefinition: grpc.ServiceDefinition = {
  Check: { path: path('Check'), requestStream: false, responseStream: false, originalName: 'check', ...method },
  Watch: { path: path('Watch'), requestStream: false, responseStream: true, originalName: 'watch', ...method },
};

/** HealthCheckRequest { string service = 1; } (an object: grpc-js takes an empty string for no message). */
interface HealthRequest {
  readonly service: string;
}

function decodeRequest(bytes: Buffer): HealthRequest {
  const reader = protobuf.Reader.create(bytes);
  let service = '';
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === ((1 << 3) | 2)) service = reader.string();
    else reader.skipType(tag & 7);
  }
  return { service };
}

function encodeRequest({ service }: HealthRequest): Buffer {
  const writer = protobuf.Writer.create();
  if (service !== '') writer.uint32((1 << 3) | 2).string(service);
  return Buffer.from(writer.finish());
}

/** HealthCheckResponse { ServingStatus status = 1; } */
function encodeResponse(status: WireStatus): Buffer {
  const number = statusNumbers[status];
  const writer = protobuf.Writer.create();
  if (number !== 0) writer.uint32((1 << 3) | 0).int32(number);
  return Buffer.from(writer.finish());
}

function decodeResponse(bytes: Buffer): WireStatus {
  const reader = protobuf.Reader.create(bytes);
  let number = 0;
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === ((1 << 3) | 0)) number = reader.int32();
    else reader.skipType(tag & 7);
  }
  return (Object.keys(statusNumbers) as WireStatus[]).find((k) => statusNumbers[k] === number) ?? 'UNKNOWN';
}
