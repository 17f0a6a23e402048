import * as grpc from '@grpc/grpc-js';
import { loadProviderService } from '../../src/server/grpc.js';
import { recordText } from './capture.js';

export interface DriverFile {
  path: string;
  mode: number;
  contents: Buffer;
}
export interface MountReply {
  files: DriverFile[];
  objectVersion: Array<{ id: string; version: string }>;
  error: { code: string } | null;
}
export interface MountRequest {
  attributes: string;
  secrets: string;
  targetPath: string;
  permission: string;
  currentObjectVersion?: Array<{ id: string; version: string }>;
}

type Unary<Req, Res> = (req: Req, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void) => void;

/** A client that talks to the provider the way the CSI driver does: gRPC over the Unix socket. */
export function createDriverClient(socketPath: string, options: { authority?: string } = {}) {
  const Client = grpc.makeGenericClientConstructor(loadProviderService(), 'CSIDriverProvider');
  const channelOptions = options.authority ? { 'grpc.default_authority': options.authority } : {};
  const client = new Client(`unix:${socketPath}`, grpc.credentials.createInsecure(), channelOptions) as unknown as grpc.Client & {
    Version: Unary<{ version: string }, { version: string; runtimeName: string; runtimeVersion: string }>;
    Mount: Unary<MountRequest, MountReply>;
  };
  // Error details and object versions are readable by users (events, status objects): record them for the hygiene scan.
  const call = <Req, Res>(fn: Unary<Req, Res>, req: Req, deadlineMs: number) =>
    new Promise<Res>((resolve, reject) =>
      fn.call(client, req, { deadline: Date.now() + deadlineMs }, (err, res) => {
        if (err) {
          recordText('gRPC status details', err.details);
          reject(err);
          return;
        }
        const versions = (res as { objectVersion?: unknown }).objectVersion;
        if (versions) recordText('object ids and versions', JSON.stringify(versions));
        resolve(res);
      }),
    );
  return {
    version: () => call(client.Version, { version: 'v1alpha1' }, 5_000),
    mount: (req: MountRequest, deadlineMs = 120_000) => call(client.Mount, req, deadlineMs),
    /** The rejection of a Mount as {code, details}, failing the test if it succeeded. */
    async mountError(req: MountRequest, deadlineMs = 120_000): Promise<{ code: number; details: string }> {
      try {
        await call(client.Mount, req, deadlineMs);
      } catch (err) {
        const e = err as grpc.ServiceError;
        return { code: e.code, details: e.details };
      }
      throw new Error('expected the Mount to fail');
    },
    close: () => client.close(),
  };
}
export type DriverClient = ReturnType<typeof createDriverClient>;

export interface PodOptions {
  namespace?: string;
  serviceAccount?: string;
  podName?: string;
  /** audience -> token */
  tokens?: Record<string, { token: string; expirationTimestamp?: string }>;
  /** Put the tokens in `secrets` (Kubernetes 1.35 serviceAccountTokenInSecrets) instead of attributes. */
  tokensInSecrets?: boolean;
  parameters?: Record<string, string>;
  secrets?: string;
  permission?: string;
}

/** Builds a MountRequest like the driver: class parameters, then the kubelet's pod keys. */
export function driverRequest(objectsYaml: string, pod: PodOptions = {}): MountRequest {
  const attributes: Record<string, string> = {
    objects: objectsYaml,
    ...pod.parameters,
    secretProviderClass: 'test-class',
    'csi.storage.k8s.io/pod.name': pod.podName ?? 'app-0',
    'csi.storage.k8s.io/pod.namespace': pod.namespace ?? 'shop',
    'csi.storage.k8s.io/pod.uid': '6f1c8a52-0000-4000-8000-000000000001',
    'csi.storage.k8s.io/serviceAccount.name': pod.serviceAccount ?? 'default',
    'csi.storage.k8s.io/ephemeral': 'true',
  };
  let secrets = pod.secrets ?? 'null';
  if (pod.tokens) {
    const tokens = JSON.stringify(pod.tokens);
    if (pod.tokensInSecrets) secrets = JSON.stringify({ 'csi.storage.k8s.io/serviceAccount.tokens': tokens });
    else attributes['csi.storage.k8s.io/serviceAccount.tokens'] = tokens;
  }
  return {
    attributes: JSON.stringify(attributes),
    secrets,
    targetPath: '/var/lib/kubelet/pods/6f1c8a52/volumes/kubernetes.io~csi/secrets/mount',
    permission: pod.permission ?? '420',
  };
}

export function fileMap(reply: MountReply): Map<string, DriverFile> {
  return new Map(reply.files.map((f) => [f.path, f]));
}
