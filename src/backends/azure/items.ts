import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { ProviderError } from '../../errors.js';
import type { Secret } from '../../secret.js';
import { bytesContent, fieldsContent } from '../kit/content.js';
import { isObject } from '../kit/json-shape.js';
import type { Content } from '../types.js';
import { bundleOf, CertificateError, splitPem, toPem, type PemBundle } from './chain.js';
import type { AzureObjectSpec } from './options.js';
import { describeItem, type ItemRef } from './vault.js';

const pkcs12Type = 'application/x-pkcs12';
const pemType = 'application/x-pem-file';

/** What an item's answer becomes, by kind and format. */
export async function contentOf(item: ItemRef, spec: AzureObjectSpec, body: Record<string, unknown>): Promise<Secret<Content>> {
  switch (item.kind) {
    case 'secret':
      return secretContent(item, spec, body);
    case 'key':
      return keyContent(item, spec, body);
    case 'cert':
      return bytesContent(toPem(base64Field(item, body, 'cer'), 'CERTIFICATE'));
  }
}

async function secretContent(item: ItemRef, spec: AzureObjectSpec, body: Record<string, unknown>): Promise<Secret<Content>> {
  const value = body['value'];
  if (typeof value !== 'string') throw shapeError(item, 'value');
  const contentType = typeof body['contentType'] === 'string' ? body['contentType'].toLowerCase() : '';
  const certificateBacked = contentType === pkcs12Type || contentType === pemType;
  if (!certificateBacked) {
    if (spec.format === 'pfx' || spec.format === 'pem-pair') {
      throw new ProviderError('InvalidArgument', `format "${spec.format}" needs a certificate-backed secret; ${describeItem(item)} is a plain secret`);
    }
    return bytesContent(value);
  }
  if (spec.format === 'pfx') {
    if (contentType !== pkcs12Type) throw new ProviderError('InvalidArgument', `format "pfx": ${describeItem(item)} is stored as PEM, not PFX; use format pem`);
    return bytesContent(Buffer.from(value, 'base64'));
  }
  const bundle = contentType === pkcs12Type ? await bundleOfPfx(item, value) : bundleOfPemFile(item, value);
  if (spec.format === 'pem-pair') return fieldsContent({ crt: Buffer.from(bundle.certificates), key: Buffer.from(bundle.key) });
  return bytesContent(bundle.key + bundle.certificates);
}

async function bundleOfPfx(item: ItemRef, value: string): Promise<PemBundle> {
  // The ASN.1 libraries load with the first certificate-backed secret, not with the store.
  const { readPfx } = await import('./pfx.js');
  try {
    const contents = readPfx(Buffer.from(value, 'base64'));
    return bundleOf(contents.keys, contents.certificates);
  } catch (err) {
    throw certificateError(item, err, 'PFX');
  }
}

function bundleOfPemFile(item: ItemRef, value: string): PemBundle {
  try {
    const { keys, certificates } = splitPem(value);
    return bundleOf(keys, certificates);
  } catch (err) {
    throw certificateError(item, err, 'PEM file');
  }
}

/** Our own parse failures carry a safe reason; anything else is named by class only. */
function certificateError(item: ItemRef, err: unknown, what: string): ProviderError {
  const ours = err instanceof CertificateError || (err instanceof Error && err.name === 'PfxError');
  const reason = ours ? err.message : 'cannot be read';
  return new ProviderError('InvalidArgument', `${describeItem(item)}: the stored ${what} ${reason}`);
}

/** Key Vault's JWK kinds, HSM-backed ones included, and the public members of each. */
const publicMembers: Record<string, { kty: 'RSA' | 'EC'; members: readonly string[] }> = {
  RSA: { kty: 'RSA', members: ['n', 'e'] },
  'RSA-HSM': { kty: 'RSA', members: ['n', 'e'] },
  EC: { kty: 'EC', members: ['crv', 'x', 'y'] },
  'EC-HSM': { kty: 'EC', members: ['crv', 'x', 'y'] },
};

function keyContent(item: ItemRef, spec: AzureObjectSpec, body: Record<string, unknown>): Secret<Content> {
  const jwk = body['key'];
  if (!isObject(jwk)) throw shapeError(item, 'key');
  const kind = typeof jwk['kty'] === 'string' ? publicMembers[jwk['kty']] : undefined;
  if (!kind) throw new ProviderError('InvalidArgument', `${describeItem(item)} is a key of a type we cannot export as a public key (only RSA and EC)`);
  const publicJwk: Record<string, unknown> = { kty: kind.kty };
  for (const member of kind.members) {
    if (typeof jwk[member] !== 'string') throw shapeError(item, `key.${member}`);
    publicJwk[member] = jwk[member];
  }
  if (spec.format === 'jwk') {
    const kid = typeof jwk['kid'] === 'string' ? { kid: jwk['kid'] } : {};
    return bytesContent(JSON.stringify({ ...kid, ...publicJwk }));
  }
  try {
    return bytesContent(createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string);
  } catch {
    throw new ProviderError('Unavailable', `Key Vault answered ${describeItem(item)} with a public key that cannot be read`, { transient: true });
  }
}

function base64Field(item: ItemRef, body: Record<string, unknown>, field: string): Buffer {
  const value = body[field];
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) throw shapeError(item, field);
  return Buffer.from(value, value.includes('-') || value.includes('_') ? 'base64url' : 'base64');
}

/** A 2xx of the wrong shape: the vault (or a proxy) misbehaved; transient like other malformed answers. */
function shapeError(item: ItemRef, field: string): ProviderError {
  return new ProviderError('Unavailable', `Key Vault answered ${describeItem(item)} without a usable "${field}"`, { transient: true });
}
