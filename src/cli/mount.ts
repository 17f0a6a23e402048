import * as grpc from '@grpc/grpc-js';
import { loadProviderService } from '../server/grpc.js';
import { fromGrpcStatus } from '../server/status.js';
import { readClassFile } from './class-file.js';
import { buildDriverRequest, podFlags, readPodFlags } from './driver-request.js';
import { parseFlags, requireFlag, type Io } from './flags.js';
import { showFiles, type ShownFile } from './output.js';

export const mountUsage = `usage: usp mount --socket PATH --class SPC.yaml --namespace NS --service-account SA
                 [--token AUDIENCE=FILE]... [--out DIR] [--show-values] [--timeout SECONDS]
Sends a Mount to a running provider exactly as the CSI driver would and shows the result.
`;

interface MountReply {
  files: Array<{ path: string; mode: number; contents: Buffer }>;
  objectVersion: Array<{ id: string; version: string }>;
}

/** `usp mount`: a driver-like client for checking a live node or the local quickstart. */
export async function runMount(args: string[], io: Io): Promise<number> {
  const flags = parseFlags(args, { ...podFlags, socket: { type: 'string' }, timeout: { type: 'string', default: '120' } });
  const socket = requireFlag(flags.socket, 'socket');
  const spc = await readClassFile(requireFlag(flags.class, 'class'));
  const request = buildDriverRequest(spc, await readPodFlags(flags));
  const Client = grpc.makeGenericClientConstructor(loadProviderService(), 'CSIDriverProvider');
  const client = new Client(`unix:${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Mount(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: MountReply) => void): void;
  };
  try {
    const reply = await new Promise<MountReply>((resolve, reject) =>
      client.Mount(request, { deadline: Date.now() + Number(flags.timeout) * 1000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    const shown: ShownFile[] = reply.files.map((f) => ({ ...f, version: versionOf(f.path, reply.objectVersion) }));
    await showFiles(io, shown, flags);
    return 0;
  } catch (err) {
    const error = err as grpc.ServiceError;
    io.stderr(`mount failed: ${fromGrpcStatus(error.code)}: ${error.details}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** Versions are per object; an expanded object's files live under its name. */
function versionOf(path: string, versions: MountReply['objectVersion']): string | undefined {
  return versions.find((v) => path === v.id || path.startsWith(`${v.id}/`))?.version;
}
