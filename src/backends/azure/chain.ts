import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';

/** A certificate-backed secret as PEM text: the key (PKCS#8) and the certificates in chain order. */
export interface PemBundle {
  readonly key: string;
  readonly certificates: string;
}

/** Why certificate material cannot be used; the caller names the object. */
export class CertificateError extends Error {}

/**
 * The private key as PKCS#8 PEM and the certificates ordered leaf, intermediates, root. The leaf is
 * the certificate of the key; each next one is the issuer of the one before, compared by name and
 * key identifiers (no signature check, so RSA and EC chains alike). When that walk does not take in
 * every certificate (an unrelated extra, a missing link) the order found is kept.
 */
export function bundleOf(keys: readonly (Buffer | string)[], certificates: readonly (Buffer | string)[]): PemBundle {
  if (keys.length !== 1) throw new CertificateError(keys.length === 0 ? 'holds no private key' : `holds ${keys.length} private keys, not one`);
  let key: KeyObject;
  try {
    const material = keys[0]!;
    key = typeof material === 'string' ? createPrivateKey(material) : createPrivateKey({ key: material, format: 'der', type: 'pkcs8' });
  } catch {
    throw new CertificateError('holds a private key that cannot be read');
  }
  const parsed = certificates.map((c) => {
    try {
      return new X509Certificate(c);
    } catch {
      throw new CertificateError('holds a certificate that cannot be read');
    }
  });
  if (parsed.length === 0) throw new CertificateError('holds no certificate');
  return {
    key: key.export({ type: 'pkcs8', format: 'pem' }) as string,
    certificates: orderChain(parsed, key).map((c) => c.toString()).join(''),
  };
}

export function orderChain(certificates: readonly X509Certificate[], key: KeyObject): X509Certificate[] {
  const leaf = certificates.find((c) => c.checkPrivateKey(key)) ?? certificates[0]!;
  const ordered = [leaf];
  const left = new Set(certificates.filter((c) => c !== leaf));
  for (let current = leaf; left.size > 0; ) {
    const issuer = [...left].find((candidate) => current.checkIssued(candidate));
    if (!issuer) break;
    ordered.push(issuer);
    left.delete(issuer);
    current = issuer;
  }
  return left.size === 0 ? ordered : [...certificates];
}

const pemBlock = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

/** Splits a stored PEM file (`application/x-pem-file`) into its keys and certificates. */
export function splitPem(text: string): { keys: string[]; certificates: string[] } {
  const keys: string[] = [];
  const certificates: string[] = [];
  for (const match of text.matchAll(pemBlock)) {
    const label = match[1]!;
    if (label === 'CERTIFICATE') certificates.push(match[0]);
    else if (label.endsWith('PRIVATE KEY')) keys.push(match[0]);
  }
  return { keys, certificates };
}

/** DER to PEM with 64-character lines. */
export function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
