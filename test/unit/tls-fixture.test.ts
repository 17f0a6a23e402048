import { createServer, request } from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createTestCa } from '../servers/tls.js';

describe('test CA', () => {
  it('issues a server certificate that Node verifies against the CA, and only that CA', async () => {
    const ca = await createTestCa();
    const other = await createTestCa('other CA');
    const leaf = await ca.issue({ commonName: 'localhost', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    const server = createServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => res.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const get = (caPem: string) =>
      new Promise<string>((resolve, reject) => {
        request({ host: '127.0.0.1', port, ca: caPem, path: '/' }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve(body));
        }).on('error', reject).end();
      });
    try {
      expect(await get(ca.cert)).toBe('ok');
      await expect(get(other.cert)).rejects.toThrow();
    } finally {
      server.close();
    }
  });
});
