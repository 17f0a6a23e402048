/**
 * PKCS#12 reading against files written by other encoders (OpenSSL 3 and Python's cryptography,
 * see fixtures/make.sh), and the test server's PFX checked by OpenSSL in turn, so neither our
 * reader nor our server's writer can agree with the other on a mistake.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleOf, orderChain, splitPem } from '../../src/backends/azure/chain.js';
import { readPfx } from '../../src/backends/azure/pfx.js';
import { buildPfx, createTestChain } from '../servers/azure.js';

const fixture = (name: string) => readFile(new URL(`./fixtures/${name}`, import.meta.url));
const subjects = (pem: string) => splitPem(pem).certificates.map((c) => new X509Certificate(c).subject);

describe('reading PFX files with an empty password', async () => {
  const chain = (await fixture('chain.pem')).toString('utf8');
  const leafKey = createPrivateKey((await fixture('leaf.key')).toString('utf8'));
  const expectedKey = leafKey.export({ type: 'pkcs8', format: 'pem' });

  it.each([
    ['openssl-aes.pfx', 'OpenSSL 3 defaults: PBES2 AES-256, NUL-terminated empty password in the MAC'],
    ['openssl-3des.pfx', 'legacy PKCS#12 PBE with 3DES and a SHA-1 MAC'],
    ['python-plain.pfx', 'Python cryptography, unencrypted bags, zero-length password in the MAC'],
  ])('%s (%s): PKCS#8 key first, then leaf, intermediate, root', async (name) => {
    const contents = readPfx(await fixture(name));
    const bundle = bundleOf(contents.keys, contents.certificates);
    expect(bundle.key).toBe(expectedKey);
    expect(subjects(bundle.certificates)).toEqual(subjects(chain));
    expect(subjects(bundle.certificates)).toEqual(['CN=fixture.shop.example', 'CN=fixture intermediate', 'CN=fixture root']);
  });

  it('refuses a PFX with a real password, saying so', async () => {
    const chainTest = await createTestChain();
    const withPassword = buildPfx(chainTest, [0, 1, 2, 3], Buffer.from('\u0000s\u0000e\u0000c\u0000r\u0000e\u0000t\u0000\u0000', 'latin1'));
    expect(() => readPfx(withPassword)).toThrow(/password that is not empty/);
  });

  it('refuses bytes that are not a PFX', () => {
    expect(() => readPfx(Buffer.from('not a pfx at all'))).toThrow(/not a valid PKCS#12/);
  });

  it.each([['RSA' as const], ['EC' as const]])('orders a shuffled %s-leaf chain under EC issuers, for both encodings of the empty password', async (leaf) => {
    const testChain = await createTestChain({ leaf });
    for (const password of [Buffer.alloc(0), Buffer.alloc(2)]) {
      const contents = readPfx(buildPfx(testChain, [3, 1, 0, 2], password));
      const bundle = bundleOf(contents.keys, contents.certificates);
      expect(subjects(bundle.certificates)).toEqual(testChain.certificates.map((c) => new X509Certificate(c).subject));
    }
  });

  it('keeps the order found when no full chain can be built', async () => {
    const a = await createTestChain();
    const b = await createTestChain();
    const mixed = [b.certificates[2]!, a.certificates[0]!, a.certificates[1]!].map((c) => new X509Certificate(c));
    expect(orderChain(mixed, createPrivateKey(a.key))).toEqual(mixed);
  });
});

describe('the test server\'s PFX, read by OpenSSL', () => {
  const openssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!openssl)('verifies its MAC and decrypts every bag, for both encodings of the empty password', async () => {
    const testChain = await createTestChain();
    const dir = await mkdtemp(join(tmpdir(), 'usp-azure-pfx-'));
    try {
      for (const password of [Buffer.alloc(0), Buffer.alloc(2)]) {
        await writeFile(join(dir, 'server.pfx'), buildPfx(testChain, [2, 0, 3, 1], password));
        const out = execFileSync('openssl', ['pkcs12', '-in', join(dir, 'server.pfx'), '-passin', 'pass:', '-nodes'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        expect(splitPem(out).certificates).toHaveLength(3);
        expect(splitPem(out).keys).toHaveLength(1);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
