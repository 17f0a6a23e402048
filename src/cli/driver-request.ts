import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tokensKey, type MountRequestMessage } from '../server/request.js';
import { UsageError, type ClassFile } from './class-file.js';
import { requireFlag, stringList, type parseFlags } from './flags.js';

export interface PodDescription {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly podName?: string;
  /** audience -> token, as `--token AUD=FILE` gave them. */
  readonly tokens: ReadonlyMap<string, string>;
}

/** Builds the request exactly as the driver would for a pod mounting this class (for `usp mount`, which sends it). */
export function buildDriverRequest(spc: ClassFile, pod: PodDescription, targetPath = '/var/lib/kubelet/pods/local/volumes/usp'): MountRequestMessage {
  const attributes: Record<string, string> = {
    ...spc.parameters,
    secretProviderClass: spc.name,
    'csi.storage.k8s.io/pod.name': pod.podName ?? 'usp-local',
    'csi.storage.k8s.io/pod.namespace': pod.namespace,
    'csi.storage.k8s.io/pod.uid': randomUUID(),
    'csi.storage.k8s.io/serviceAccount.name': pod.serviceAccount,
    'csi.storage.k8s.io/ephemeral': 'true',
  };
  if (pod.tokens.size > 0) {
    const tokens = Object.fromEntries(
      [...pod.tokens].map(([audience, token]) => [audience, { token, expirationTimestamp: new Date(tokenExpiry(token)).toISOString() }]),
    );
    attributes[tokensKey] = JSON.stringify(tokens);
  }
  return { attributes: JSON.stringify(attributes), secrets: '{}', targetPath, permission: '420' };
}

/** Reads `--token AUD=FILE` flags; an empty audience (`=FILE`) is the API server's own. */
export async function readTokenFlags(flags: readonly string[]): Promise<Map<string, string>> {
  const tokens = new Map<string, string>();
  for (const flag of flags) {
    const at = flag.indexOf('=');
    if (at < 0) throw new UsageError(`--token: "${flag}" must be AUDIENCE=FILE`);
    const file = flag.slice(at + 1);
    try {
      tokens.set(flag.slice(0, at), (await readFile(file, 'utf8')).trim());
    } catch (err) {
      throw new UsageError(`--token: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return tokens;
}

/** The JWT's own `exp` (epoch ms) where it has one, like the driver reports; else an hour from now. */
export function tokenExpiry(token: string): number {
  const payload = token.split('.')[1];
  try {
    const exp = (JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    // Beyond ±8.64e15 ms a Date is invalid; such an exp is as good as none.
    if (typeof exp === 'number' && Math.abs(exp * 1000) <= 8.64e15) return exp * 1000;
  } catch {
    // Not a JWT: fall through to the default.
  }
  return Date.now() + 3_600_000;
}

/** The flags `render` and `mount` share: which pod, which class, and what to show. */
export const podFlags = {
  class: { type: 'string' },
  namespace: { type: 'string' },
  'service-account': { type: 'string' },
  pod: { type: 'string' },
  token: { type: 'string', multiple: true },
  out: { type: 'string' },
  'show-values': { type: 'boolean' },
} as const;

type PodFlagValues = ReturnType<typeof parseFlags<typeof podFlags>>;

export async function readPodFlags(flags: PodFlagValues): Promise<PodDescription> {
  return {
    namespace: requireFlag(flags.namespace, 'namespace'),
    serviceAccount: requireFlag(flags['service-account'], 'service-account'),
    podName: typeof flags.pod === 'string' ? flags.pod : undefined,
    tokens: await readTokenFlags(stringList(flags.token)),
  };
}
