import type { MountInput } from '../mount/input.js';
import { parseMountRequest, type MountRequestMessage } from './request.js';

export interface RequestCacheOptions {
  /** Requests kept at most; the least recently used goes first. */
  readonly maxEntries?: number;
  /** Characters of request text (attributes and secrets) kept at most, all entries together. */
  readonly maxChars?: number;
  /** How long one parse is reused; a token's own expiry ends it sooner. */
  readonly maxAgeMs?: number;
  /** Epoch ms (token expiries are wall-clock times). */
  readonly now?: () => number;
}

interface Entry {
  readonly secrets: string;
  readonly permission: string;
  readonly input: MountInput;
  readonly chars: number;
  /** When the entry must be gone: its age limit, or the first of its tokens to expire. */
  readonly until: number;
}

/** parseMountRequest with memory; `size` (entries kept) is for tests. */
export type RequestCache = ((request: MountRequestMessage) => MountInput) & { readonly size: number };

/**
 * parseMountRequest, reusing the MountInput of a request whose strings are exactly those of an
 * earlier one: the driver sends a volume's attributes unchanged at every rotation poll, and the
 * parse (two JSON documents, five Maps, the token wrappers) is a visible part of a cache-hit
 * Mount. The reused input also lets later steps find what they worked out for it before (the
 * parsed class, the access decision, the identity key).
 *
 * Keyed by the exact attributes, secrets and permission strings: a request that differs in any
 * character is parsed. Bounded in entries and characters (a request above an eighth of them is not
 * kept). An entry holds the pod's tokens and any nodePublishSecretRef secrets, so it is dropped
 * when the first token expires (by a timer, not at the next lookup: no expired token stays in
 * memory) and in any case `maxAgeMs` after it was parsed. Failed parses are not kept: their error
 * is made again each time, as before.
 */
export function createRequestCache(options: RequestCacheOptions = {}): RequestCache {
  const maxEntries = options.maxEntries ?? 256;
  const maxChars = options.maxChars ?? 512 * 1024;
  const maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  let chars = 0;
  let timer: { readonly at: number; readonly handle: NodeJS.Timeout } | undefined;

  const drop = (attributes: string, entry: Entry) => {
    entries.delete(attributes);
    chars -= entry.chars;
  };
  const sweep = () => {
    timer = undefined;
    const at = now();
    for (const [attributes, entry] of entries) if (entry.until <= at) drop(attributes, entry);
    arm();
  };
  const arm = () => {
    let next = Infinity;
    for (const entry of entries.values()) next = Math.min(next, entry.until);
    if (next === Infinity || (timer && timer.at <= next)) return;
    if (timer) clearTimeout(timer.handle);
    const handle = setTimeout(sweep, Math.max(0, next - now()));
    handle.unref();
    timer = { at: next, handle };
  };

  const parse = (request: MountRequestMessage): MountInput => {
    const { attributes, secrets, permission } = request;
    const hit = entries.get(attributes);
    if (hit && hit.secrets === secrets && hit.permission === permission && hit.until > now()) {
      // Least recently used first: move it to the end.
      entries.delete(attributes);
      entries.set(attributes, hit);
      return hit.input;
    }
    if (hit) drop(attributes, hit);
    const input = parseMountRequest(request);
    const size = attributes.length + secrets.length;
    if (size > maxChars / 8) return input;
    const parsedAt = now();
    let until = parsedAt + maxAgeMs;
    for (const token of input.tokens.values()) if (token.expiresAt !== undefined) until = Math.min(until, token.expiresAt);
    if (until <= parsedAt) return input;
    entries.set(attributes, { secrets, permission, input, chars: size, until });
    chars += size;
    for (const [oldest, entry] of entries) {
      if (entries.size <= maxEntries && chars <= maxChars) break;
      drop(oldest, entry);
    }
    arm();
    return input;
  };
  return Object.defineProperty(parse, 'size', { get: () => entries.size }) as RequestCache;
}
