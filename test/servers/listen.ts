import { once } from 'node:events';
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Starts `server` on a free loopback port and returns its base URL (`https` unless `http`). */
export async function listenOnLoopback(server: Server, http = false): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `${http ? 'http' : 'https'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
