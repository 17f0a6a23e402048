import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HttpServerDeps {
  /** Really exercises the gRPC socket (a Version call); resolves true when it answers. */
  readonly checkHealth: () => Promise<boolean>;
  readonly isReady: () => boolean;
  /** Each store's client (not loaded, loaded, failed and why), shown by `/readyz` beside the verdict. */
  readonly reportStores: () => readonly object[];
  readonly registry: Registry;
}

export interface HttpServer {
  listen(address: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * `/healthz` (liveness: the socket answers), `/readyz` (serving, not starting or draining; the body
 * lists each store's client), `/metrics`.
 */
export function createHttpServer(deps: HttpServerDeps): HttpServer {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    switch (path) {
      case '/healthz':
        deps.checkHealth().then(
          (ok) => reply(ok ? 200 : 503, ok ? 'ok\n' : 'the provider socket does not answer\n'),
          () => reply(503, 'the provider socket does not answer\n'),
        );
        return;
      case '/readyz': {
        // The kubelet reads only the status: a store whose client failed fails its own Mounts, not the others'.
        const ready = deps.isReady();
        return reply(ready ? 200 : 503, `${JSON.stringify({ ready, stores: deps.reportStores() })}\n`, 'application/json');
      }
      case '/metrics':
        deps.registry.metrics().then(
          (text) => reply(200, text, deps.registry.contentType),
          () => reply(500, 'metrics unavailable\n'),
        );
        return;
      default:
        return reply(404, 'not found\n');
    }
  });
  server.keepAliveTimeout = 5_000;
  return {
    listen(address) {
      const { host, port } = parseHostPort(address);
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const bound = server.address() as AddressInfo;
          resolve(bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

export function parseHostPort(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new Error(`"${address}" is not HOST:PORT`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}
