import { fromBER, ObjectIdentifier, Sequence, type BaseBlock } from 'asn1js';
import { algorithmOf, decrypt, emptyPasswords, integer, macMatches, octets, PfxError } from './pkcs12-crypto.js';

/** What a PFX holds: private keys as PKCS#8 DER and certificates as DER, in the order found. */
export interface PfxContents {
  readonly keys: Buffer[];
  readonly certificates: Buffer[];
}

const idData = '1.2.840.113549.1.7.1';
const idEncryptedData = '1.2.840.113549.1.7.6';
const idKeyBag = '1.2.840.113549.1.12.10.1.1';
const idShroudedKeyBag = '1.2.840.113549.1.12.10.1.2';
const idCertBag = '1.2.840.113549.1.12.10.1.3';
const idX509Certificate = '1.2.840.113549.1.9.22.1';

/**
 * Reads a PFX (RFC 7292) with an empty password: checks its MAC with each encoding of the empty
 * password and decrypts with the one that matched (tries both when it has no MAC). asn1js reads
 * the BER/DER structure; every cryptographic step is Node's. (The schema libraries on top of
 * asn1js cost 7 MiB of RSS once loaded; this walk of the few structures a PFX has costs none.)
 */
export function readPfx(der: Buffer): PfxContents {
  const [version, authSafe, macData] = sequence(parse(der)).valueBlock.value;
  if (integer(version) !== 3) throw new PfxError('is not a version 3 PKCS#12 (PFX) file');
  const authSafeBytes = dataOf(authSafe);
  const passwords = macData ? [passwordByMac(macData, authSafeBytes)] : emptyPasswords;
  let lastError: unknown;
  for (const password of passwords) {
    try {
      return readAuthenticatedSafe(authSafeBytes, password);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError instanceof PfxError ? lastError : new PfxError('cannot be read');
}

/** MacData ::= SEQUENCE { DigestInfo { AlgorithmIdentifier, OCTET STRING }, macSalt, iterations DEFAULT 1 } */
function passwordByMac(macData: BaseBlock, content: Buffer): Buffer {
  const [digestInfo, salt, iterations] = sequence(macData).valueBlock.value;
  const [algorithm, digest] = sequence(digestInfo).valueBlock.value;
  const hashOid = algorithmOf(algorithm)?.oid;
  if (hashOid === undefined) throw malformed();
  const rounds = iterations === undefined ? 1 : integer(iterations);
  const password = emptyPasswords.find((p) => macMatches(hashOid, octets(digest), octets(salt), rounds, p, content));
  if (!password) throw new PfxError('is protected by a password that is not empty (its integrity check fails)');
  return password;
}

/** AuthenticatedSafe ::= SEQUENCE OF ContentInfo, each Data (SafeContents) or EncryptedData. */
function readAuthenticatedSafe(bytes: Buffer, password: Buffer): PfxContents {
  const contents: PfxContents = { keys: [], certificates: [] };
  for (const info of sequence(parse(bytes)).valueBlock.value) {
    const type = oidOf(sequence(info).valueBlock.value[0]);
    let safe: Buffer;
    if (type === idData) safe = dataOf(info);
    else if (type === idEncryptedData) safe = decryptEncryptedData(explicitContent(info), password);
    else throw new PfxError('holds content encrypted to a public key, which is not supported');
    for (const bag of sequence(parse(safe)).valueBlock.value) readBag(bag, password, contents);
  }
  return contents;
}

/** SafeBag ::= SEQUENCE { bagId, [0] EXPLICIT bagValue, bagAttributes OPTIONAL } */
function readBag(bag: BaseBlock, password: Buffer, contents: PfxContents): void {
  const type = oidOf(sequence(bag).valueBlock.value[0]);
  const value = explicitContent(bag);
  if (type === idKeyBag) contents.keys.push(Buffer.from(value.valueBeforeDecodeView));
  else if (type === idShroudedKeyBag) {
    const [algorithm, data] = sequence(value).valueBlock.value;
    contents.keys.push(decrypt(algorithm, octets(data), password));
  } else if (type === idCertBag && oidOf(sequence(value).valueBlock.value[0]) === idX509Certificate) {
    contents.certificates.push(octets(explicitContent(value)));
  }
}

/**
 * EncryptedData ::= SEQUENCE { version, EncryptedContentInfo ::= SEQUENCE { contentType,
 * contentEncryptionAlgorithm, encryptedContent [0] IMPLICIT OCTET STRING } }; the IMPLICIT content
 * is primitive or, in BER, constructed of OCTET STRINGs.
 */
function decryptEncryptedData(block: BaseBlock, password: Buffer): Buffer {
  const info = sequence(block).valueBlock.value[1];
  const [, algorithm, content] = sequence(info).valueBlock.value;
  if (content === undefined || content.idBlock.tagClass !== 3 || content.idBlock.tagNumber !== 0) throw malformed();
  const parts = content.idBlock.isConstructed ? (content.valueBlock as unknown as { value: BaseBlock[] }).value : [content];
  const bytes = Buffer.concat(parts.map((part) => Buffer.from((part.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView)));
  return decrypt(algorithm, bytes, password);
}

/** The OCTET STRING inside a ContentInfo of type Data. */
function dataOf(contentInfo: BaseBlock | undefined): Buffer {
  if (oidOf(sequence(contentInfo).valueBlock.value[0]) !== idData) throw new PfxError('is signed with a public key rather than a password, which is not supported');
  return octets(explicitContent(contentInfo));
}

/** The value inside the `[0] EXPLICIT` field that follows a type OID. */
function explicitContent(block: BaseBlock | undefined): BaseBlock {
  const tagged = sequence(block).valueBlock.value[1];
  const inner = tagged?.idBlock.tagClass === 3 && tagged.idBlock.tagNumber === 0 ? (tagged.valueBlock as unknown as { value?: BaseBlock[] }).value?.[0] : undefined;
  if (!inner) throw malformed();
  return inner;
}

function parse(bytes: Buffer): BaseBlock {
  const parsed = fromBER(new Uint8Array(bytes));
  if (parsed.offset === -1) throw malformed();
  return parsed.result;
}

function sequence(block: BaseBlock | undefined): Sequence {
  if (!(block instanceof Sequence)) throw malformed();
  return block;
}

function oidOf(block: BaseBlock | undefined): string {
  if (!(block instanceof ObjectIdentifier)) throw malformed();
  return block.valueBlock.toString();
}

function malformed(): PfxError {
  return new PfxError('is not a valid PKCS#12 (PFX) structure');
}
