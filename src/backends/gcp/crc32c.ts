/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum Secret Manager sends as
 * `dataCrc32c`. Not zlib's CRC-32: that uses another polynomial. Node 20 has neither built in.
 */
const table = buildTable();

function buildTable(): Uint32Array {
  const out = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let bit = 0; bit < 8; bit += 1) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    out[n] = c >>> 0;
  }
  return out;
}

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = table[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
