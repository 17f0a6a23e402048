/**
 * The shared fault vocabulary of the test servers. A server takes one fault per request (the first
 * armed rule whose `match` fits the request's route) and applies it:
 *
 *   latency    waits `ms`, then answers normally
 *   status     answers `status` at once with the server's own error body (and Retry-After if given)
 *   reset      sends the real headers (with the full Content-Length) and half of the real body,
 *              then destroys the socket
 *   truncated  sends valid headers and the first half of the real JSON body, then ends cleanly
 *   malformed  answers 200 with a body that is not what the client expects: `text` (an HTML page,
 *              the default) or `shape` (valid JSON of the wrong shape)
 *   oversized  answers 200 with a JSON document of `bytes` bytes, streamed in chunks without a
 *              Content-Length, stopping early if the client goes away
 *   hang       reads the request and never answers (the socket is held until the server closes)
 *
 *   const faults = createFaultInjector();
 *   faults.inject({ kind: 'reset' }, { times: 2, match: /\/secrets\// });
 *   const fault = faults.take(route);                       // in the server, once per request
 *   if (fault && (await faults.before(fault, res))) return; // latency waits; hang holds; status answers
 *   faults.send(fault, res, status, headers, body);         // the real answer, possibly spoiled
 */
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export type Fault =
  | { readonly kind: 'latency'; readonly ms: number }
  | { readonly kind: 'status'; readonly status: number; readonly retryAfterSeconds?: number }
  | { readonly kind: 'reset' }
  | { readonly kind: 'truncated' }
  | { readonly kind: 'malformed'; readonly shape?: 'text' | 'shape' }
  | { readonly kind: 'oversized'; readonly bytes: number }
  | { readonly kind: 'hang' };

export type FaultKind = Fault['kind'];

/**
 * Appears in every malformed (`text`) body: a client error message quoting the body would carry it
 * to the user, as it would a secret in a real answer. Tests assert it never appears.
 */
export const malformedBodyMarker = 'MALFORMED-BODY-9f2c61d0';

export interface InjectOptions {
  /** How many requests this applies to (default 1; Infinity until cleared). */
  readonly times?: number;
  /** Only requests whose route (a server-specific string: the path, or the AWS operation) matches. */
  readonly match?: string | RegExp;
}

/** How a server renders an error status in its own protocol. */
export type ErrorBody = (status: number, retryAfterSeconds: number | undefined) => { body: string; headers?: Record<string, string> };

interface Rule {
  readonly fault: Fault;
  remaining: number;
  readonly match?: string | RegExp;
}

export interface FaultInjector {
  inject(fault: Fault, options?: InjectOptions): void;
  /** The fault for this request, if any; consumes one use of its rule. */
  take(route: string): Fault | undefined;
  /**
   * The part of a fault that acts before the server looks at the request. Returns true when the
   * response is taken care of (status answered, or held forever by `hang`).
   */
  before(fault: Fault, res: ServerResponse, errorBody: ErrorBody, contentType: string): Promise<boolean>;
  /** Writes the server's real answer, spoiled by `fault` when it is reset, truncated, malformed or oversized. */
  send(fault: Fault | undefined, res: ServerResponse, status: number, headers: Record<string, string>, body: string, wrongShape: string): void;
  /** Rules still armed. */
  pending(): number;
  /** Applied faults so far, by kind. */
  readonly applied: Record<FaultKind, number>;
  clear(): void;
  /** Ends every hanging response (called by the server's close()). */
  releaseHanging(): void;
}

export function createFaultInjector(): FaultInjector {
  const rules: Rule[] = [];
  const hanging = new Set<ServerResponse>();
  const applied: Record<FaultKind, number> = { latency: 0, status: 0, reset: 0, truncated: 0, malformed: 0, oversized: 0, hang: 0 };

  const matches = (rule: Rule, route: string) =>
    rule.match === undefined || (typeof rule.match === 'string' ? route.includes(rule.match) : rule.match.test(route));

  return {
    applied,
    inject(fault, { times = 1, match } = {}) {
      rules.push({ fault, remaining: times, ...(match !== undefined ? { match } : {}) });
    },
    take(route) {
      const index = rules.findIndex((r) => matches(r, route));
      if (index < 0) return undefined;
      const rule = rules[index]!;
      rule.remaining -= 1;
      if (rule.remaining <= 0) rules.splice(index, 1);
      applied[rule.fault.kind] += 1;
      return rule.fault;
    },
    async before(fault, res, errorBody, contentType) {
      switch (fault.kind) {
        case 'latency':
          await sleep(fault.ms);
          return false;
        case 'hang':
          hanging.add(res);
          res.on('close', () => hanging.delete(res));
          return true;
        case 'status': {
          const { body, headers } = errorBody(fault.status, fault.retryAfterSeconds);
          res.writeHead(fault.status, {
            'content-type': contentType,
            'content-length': String(Buffer.byteLength(body)),
            ...(fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {}),
            ...headers,
          });
          res.end(body);
          return true;
        }
        default:
          return false;
      }
    },
    send(fault, res, status, headers, body, wrongShape) {
      const bytes = Buffer.from(body, 'utf8');
      const plain = { ...headers };
      delete plain['content-length'];
      switch (fault?.kind) {
        case 'reset': {
          res.writeHead(status, { ...plain, 'content-length': String(bytes.length) });
          res.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
          // Let the headers and the first half leave before the connection dies.
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        case 'truncated':
          res.writeHead(status, plain);
          res.end(bytes.subarray(0, Math.floor(bytes.length / 2)));
          return;
        case 'malformed': {
          const text = fault.shape === 'shape' ? wrongShape : `<html><body><h1>502 Bad Gateway</h1><p>${malformedBodyMarker}</p></body></html>`;
          res.writeHead(200, { ...plain, 'content-length': String(Buffer.byteLength(text)) });
          res.end(text);
          return;
        }
        case 'oversized':
          res.writeHead(200, plain);
          streamOversized(res, fault.bytes);
          return;
        default:
          res.writeHead(status, { ...plain, 'content-length': String(bytes.length) });
          res.end(bytes);
      }
    },
    pending: () => rules.length,
    clear() {
      rules.length = 0;
    },
    releaseHanging() {
      for (const res of hanging) res.socket?.destroy();
      hanging.clear();
    },
  };
}

/** `{"data":{"blob":"AAAA...` for `total` bytes, closed properly, written as the client drains it. */
function streamOversized(res: ServerResponse, total: number): void {
  const head = Buffer.from('{"data":{"blob":"');
  const tail = Buffer.from('"}}');
  const chunk = Buffer.alloc(64 * 1024, 'A');
  let left = Math.max(0, total - head.length - tail.length);
  let stopped = false;
  res.on('close', () => {
    stopped = true;
  });
  res.write(head);
  const pump = () => {
    while (!stopped && left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!res.write(piece)) {
        res.once('drain', pump);
        return;
      }
    }
    if (!stopped) res.end(tail);
  };
  pump();
}
