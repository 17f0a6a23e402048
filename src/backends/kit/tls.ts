import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ProviderError } from '../../errors.js';

/** Node's codes for a server certificate that fails verification: retrying cannot help. */
export const tlsVerificationErrors: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
]);

/** TLS material of a store, read from the files its options name. */
export interface TlsMaterial {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly servername?: string;
}

export interface TlsFiles {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly serverName?: string;
}

/** Reads a store's CA bundle and client certificate; a file that cannot be read names its field. */
export async function readTlsMaterial(files: TlsFiles | undefined, baseDir: string, at = 'tls'): Promise<TlsMaterial> {
  const read = async (field: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    const path = resolve(baseDir, file);
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new ProviderError('InvalidArgument', `${at}.${field}: cannot read ${path} (${code})`);
    }
  };
  const [ca, cert, key] = await Promise.all([read('caFile', files?.caFile), read('certFile', files?.certFile), read('keyFile', files?.keyFile)]);
  return {
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(files?.serverName !== undefined ? { servername: files.serverName } : {}),
  };
}
