import { createDecipheriv, createHash, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { Integer, OctetString, ObjectIdentifier, Sequence, type BaseBlock } from 'asn1js';

/**
 * The password-based cryptography of PKCS#12 (RFC 7292, RFC 8018) on Node's own crypto: the
 * integrity MAC, the legacy PKCS#12 PBE (3DES) and PBES2 (PBKDF2 with AES or 3DES).
 *
 * Key Vault's PFX files have an empty password, which has two encodings in the PKCS#12 key
 * derivation: zero bytes (Key Vault, Python's cryptography) and a lone BMPString NUL terminator
 * (`openssl -passout pass:`). PBES2 feeds PBKDF2 the password bytes, where both are empty.
 */
export const emptyPasswords: readonly Buffer[] = [Buffer.alloc(0), Buffer.alloc(2)];

/**
 * Why a PFX cannot be read; the caller names the object. Told apart by name: the caller does not
 * import this lazily loaded module.
 */
export class PfxError extends Error {
  override readonly name = 'PfxError';
}

const hashes: Record<string, { name: string; block: number }> = {
  '1.3.14.3.2.26': { name: 'sha1', block: 64 },
  '2.16.840.1.101.3.4.2.1': { name: 'sha256', block: 64 },
  '2.16.840.1.101.3.4.2.2': { name: 'sha384', block: 128 },
  '2.16.840.1.101.3.4.2.3': { name: 'sha512', block: 128 },
};
const hmacPrfs: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};
const pbes2Ciphers: Record<string, { name: string; keyLength: number }> = {
  '2.16.840.1.101.3.4.1.2': { name: 'aes-128-cbc', keyLength: 16 },
  '2.16.840.1.101.3.4.1.22': { name: 'aes-192-cbc', keyLength: 24 },
  '2.16.840.1.101.3.4.1.42': { name: 'aes-256-cbc', keyLength: 32 },
  '1.2.840.113549.3.7': { name: 'des-ede3-cbc', keyLength: 24 },
};
const pbeWithSha1And3KeyTripleDes = '1.2.840.113549.1.12.1.3';
const pbes2 = '1.2.840.113549.1.5.13';
const pbkdf2 = '1.2.840.113549.1.5.12';

/**
 * The PKCS#12 key derivation (RFC 7292 appendix B.2); `id` 1 = key, 2 = IV, 3 = MAC key. Node has
 * no iterated digest, so each round is one native call: the first few thousand rounds raise RSS
 * by about 6 MiB of allocator high-water, once per process (measured), which is one reason this
 * module loads only when a certificate-backed secret is read.
 */
export function deriveKey(hashOid: string, password: Buffer, salt: Buffer, iterations: number, id: 1 | 2 | 3, length: number): Buffer {
  const hash = hashes[hashOid];
  if (!hash) throw new PfxError(`uses the unsupported digest ${hashOid}`);
  const v = hash.block;
  const stretch = (data: Buffer) => (data.length === 0 ? data : Buffer.alloc(v * Math.ceil(data.length / v), data));
  const input = Buffer.concat([stretch(salt), stretch(password)]);
  const out: Buffer[] = [];
  for (let produced = 0; produced < length; ) {
    let a = createHash(hash.name).update(Buffer.alloc(v, id)).update(input).digest();
    for (let i = 1; i < iterations; i += 1) a = createHash(hash.name).update(a).digest();
    out.push(a);
    produced += a.length;
    const b = Buffer.alloc(v, a);
    for (let j = 0; j < input.length; j += v) addBlock(input.subarray(j, j + v), b);
  }
  return Buffer.concat(out).subarray(0, length);
}

/** block = (block + b + 1) mod 2^(8v), big-endian, in place. */
function addBlock(block: Buffer, b: Buffer): void {
  let carry = 1;
  for (let k = block.length - 1; k >= 0; k -= 1) {
    const sum = block[k]! + b[k]! + carry;
    block[k] = sum & 0xff;
    carry = sum >> 8;
  }
}

/** Whether the PFX's MAC over `content` matches with `password`. */
export function macMatches(hashOid: string, expected: Buffer, salt: Buffer, iterations: number, password: Buffer, content: Buffer): boolean {
  const hash = hashes[hashOid];
  if (!hash) throw new PfxError(`uses the unsupported MAC digest ${hashOid}`);
  const key = deriveKey(hashOid, password, salt, iterations, 3, createHash(hash.name).digest().length);
  const actual = createHmac(hash.name, key).update(content).digest();
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Decrypts `data`, encrypted under `algorithm` (an AlgorithmIdentifier), with `password`. */
export function decrypt(algorithm: BaseBlock | undefined, data: Buffer, password: Buffer): Buffer {
  const id = algorithmOf(algorithm);
  if (!id) throw new PfxError('has a malformed encryption algorithm');
  const params = id.params;
  if (id.oid === pbeWithSha1And3KeyTripleDes && params instanceof Sequence) {
    const [salt, iterations] = params.valueBlock.value;
    const s = octets(salt);
    const n = integer(iterations);
    const key = deriveKey('1.3.14.3.2.26', password, s, n, 1, 24);
    const iv = deriveKey('1.3.14.3.2.26', password, s, n, 2, 8);
    return run('des-ede3-cbc', key, iv, data);
  }
  if (id.oid === pbes2 && params instanceof Sequence) {
    const [kdf, scheme] = params.valueBlock.value.map(algorithmOf);
    if (kdf?.oid !== pbkdf2 || !(kdf.params instanceof Sequence)) throw new PfxError('uses a PBES2 key derivation other than PBKDF2');
    const cipher = scheme ? pbes2Ciphers[scheme.oid] : undefined;
    if (!cipher || !scheme) throw new PfxError(`uses the unsupported PBES2 cipher ${scheme?.oid ?? '(none)'}`);
    const [salt, iterations, ...rest] = kdf.params.valueBlock.value;
    const prfBlock = rest.find((b) => b instanceof Sequence);
    const prf = prfBlock ? hmacPrfs[algorithmOf(prfBlock)?.oid ?? ''] : 'sha1';
    if (!prf) throw new PfxError('uses an unsupported PBKDF2 pseudo-random function');
    const key = pbkdf2Sync(password, octets(salt), integer(iterations), cipher.keyLength, prf);
    return run(cipher.name, key, octets(scheme.params), data);
  }
  throw new PfxError(`is encrypted with ${id.oid}, which is not supported (RC2 and RC4 are legacy; re-export it with AES)`);
}

function run(cipher: string, key: Buffer, iv: Buffer, data: Buffer): Buffer {
  try {
    const decipher = createDecipheriv(cipher, key, iv);
    return Buffer.concat([decipher.update(data), decipher.final()]);
  } catch {
    throw new PfxError('cannot be decrypted with an empty password');
  }
}

/** An AlgorithmIdentifier: its OID and parameters. */
export function algorithmOf(block: BaseBlock | undefined): { oid: string; params: BaseBlock | undefined } | undefined {
  if (!(block instanceof Sequence)) return undefined;
  const [oid, params] = block.valueBlock.value;
  return oid instanceof ObjectIdentifier ? { oid: oid.valueBlock.toString(), params } : undefined;
}

/** The bytes of an OCTET STRING, primitive or constructed (BER). */
export function octets(block: BaseBlock | undefined): Buffer {
  if (!(block instanceof OctetString)) throw new PfxError('is not a valid PKCS#12 (PFX) structure');
  if (!block.idBlock.isConstructed) return Buffer.from(block.valueBlock.valueHexView);
  return Buffer.concat(block.valueBlock.value.map((part) => octets(part)));
}

export function integer(block: BaseBlock | undefined): number {
  if (!(block instanceof Integer)) throw new PfxError('is not a valid PKCS#12 (PFX) structure');
  const n = block.valueBlock.valueDec;
  if (!Number.isSafeInteger(n) || n < 1 || n > 10_000_000) throw new PfxError('has an implausible iteration count');
  return n;
}
