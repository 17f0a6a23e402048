import * as grpc from '@grpc/grpc-js';
import { fromGrpcStatus } from '../errors.js';
import { loadProviderService } from '../server/grpc.js';
import { readClassFile } from './class-file.js';
import { buildDriverRequest, readTokenFlags } from './driver-request.js';
import { parseFlags, requireFlag, stringList, type Io } from './flags.js';
import { formatFileTable, formatValues, writeFiles, type ShownFile } from './output.js';

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
  const flags = parseFlags(args, {
    socket: { type: 'string' },
    class: { type: 'string' },
    namespace: { type: 'string' },
    'service-account': { type: 'string' },
    pod: { type: 'string' },
    token: { type: 'string', multiple: true },
    out: { type: 'string' },
    'show-values': { type: 'boolean' },
    timeout: { type: 'string', default: '120' },
  });
  const socket = requireFlag(flags.socket, 'socket');
  const spc = await readClassFile(requireFlag(flags.class, 'class'));
  const request = buildDriverRequest(spc, {
    namespace: requireFlag(flags.namespace, 'namespace'),
    serviceAccount: requireFlag(flags['service-account'], 'service-account'),
    podName: typeof flags.pod === 'string' ? flags.pod : undefined,
    tokens: await readTokenFlags(stringList(flags.token)),
  });
  const Client = grpc.makeGenericClientConstructor(loadProviderService(), 'CSIDriverProvider');
  const client = new Client(`unix:${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Mount(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: MountReply) => void): void;
  };
  try {
    const reply = await new Promise<MountReply>((resolve, reject) =>
      client.Mount(request, { deadline: Date.now() + Number(flags.timeout) * 1000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    const shown: ShownFile[] = reply.files.map((f) => ({ ...f, version: versionOf(f.path, reply.objectVersion) }));
    io.stdout(formatFileTable(shown));
    if (flags['show-values']) io.stdout(formatValues(shown));
    if (typeof flags.out === 'string') {
      await writeFiles(flags.out, shown);
      io.stdout(`wrote ${shown.length} files to ${flags.out}\n`);
    }
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
