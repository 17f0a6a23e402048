import type { Logger } from 'pino';
import { Secret } from '../../secret.js';
import { BoundedMap } from '../kit/bounded-map.js';
import { fieldsContent } from '../kit/content.js';
import { createSingleFlight } from '../kit/single-flight.js';
import { isTransient } from '../kit/transient.js';
import type { FetchResult } from '../types.js';
import { maxCacheEntries, type Caller, type VaultAuth } from './auth.js';
import { encodePath, isOk, readError, requireData } from './client.js';
import type { VaultObjectSpec } from './options.js';

interface LeaseEntry {
  readonly fields: Secret<Record<string, unknown>>;
  readonly leaseId?: Secret<string>;
  readonly renewable: boolean;
  readonly issuedLifetimeMs: number;
  obtainedAt: number;
  lifetimeMs: number;
}

/**
 * Dynamic secrets (database credentials, PKI certificates) and other non-KV reads. A leased
 * answer is kept per identity, path and arguments, and reused or renewed instead of minting a new
 * credential on every rotation poll.
 */
export class VaultLeases {
  readonly #leases = new BoundedMap<string, LeaseEntry>(maxCacheEntries, (e) => this.now() >= e.obtainedAt + e.lifetimeMs);
  readonly #fetches = createSingleFlight<FetchResult>();

  constructor(
    private readonly auth: VaultAuth,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  /** Shared across Mounts of one identity so concurrent rotations mint one credential, not several. */
  fetch(segments: readonly string[], spec: VaultObjectSpec, caller: Caller): Promise<FetchResult> {
    const key = [caller.key, spec.method, segments.join('/'), canonicalJson(spec.args ?? null)].join('\u0000');
    return this.#fetches.run(key, () => this.#reuseOrIssue(key, segments, spec, caller));
  }

  clear(): void {
    this.#leases.clear();
  }

  async #reuseOrIssue(key: string, segments: readonly string[], spec: VaultObjectSpec, caller: Caller): Promise<FetchResult> {
    const held = this.#leases.get(key);
    if (held && (this.#isFresh(held) || (await this.#renew(held, caller)))) return leaseResult(held);
    try {
      return await this.#issue(key, segments, spec, caller);
    } catch (err) {
      // The held credential is still valid: better than failing the Mount while Vault is down.
      if (held && this.#isAlive(held) && isTransient(err)) return leaseResult(held);
      this.#leases.delete(key);
      throw err;
    }
  }

  async #issue(key: string, segments: readonly string[], spec: VaultObjectSpec, caller: Caller): Promise<FetchResult> {
    const res = await this.auth.callAs(caller, { method: spec.method, path: encodePath(segments), ...(spec.args ? { body: spec.args } : {}) });
    if (!isOk(res.status)) throw readError(res, caller, spec.method === 'GET' ? 'reading' : `${spec.method} to`, segments);
    const data = requireData(res, segments);
    const entry = this.#entryFor(res.body, data);
    this.#leases.delete(key);
    if (!entry) return { content: fieldsContent(data) };
    this.#leases.set(key, entry);
    this.logger.debug({ path: segments.join('/'), lifetimeMs: entry.lifetimeMs }, 'issued a Vault dynamic secret');
    return leaseResult(entry);
  }

  /** Reused until two-thirds of its lifetime: late enough to spare Vault, early enough for the app to switch. */
  #isFresh(entry: LeaseEntry): boolean {
    return this.now() < entry.obtainedAt + (entry.lifetimeMs * 2) / 3;
  }

  /** Still valid, with a margin so the app does not receive a credential about to lapse. */
  #isAlive(entry: LeaseEntry): boolean {
    return this.now() < entry.obtainedAt + entry.lifetimeMs * 0.9;
  }

  async #renew(entry: LeaseEntry, caller: Caller): Promise<boolean> {
    if (!entry.renewable || !entry.leaseId || !this.#isAlive(entry)) return false;
    const increment = Math.round(entry.issuedLifetimeMs / 1000);
    try {
      const res = await this.auth.callAs(caller, { method: 'PUT', path: 'sys/leases/renew', body: { lease_id: entry.leaseId.reveal(), increment } });
      const granted = Number(res.body['lease_duration']);
      // Near the role's max TTL Vault grants less and less; a fresh credential is better than many renewals.
      if (!isOk(res.status) || !(granted * 1000 >= entry.issuedLifetimeMs / 3)) return false;
      entry.obtainedAt = this.now();
      entry.lifetimeMs = granted * 1000;
      this.logger.debug({ lifetimeMs: entry.lifetimeMs }, 'renewed a Vault lease');
      return true;
    } catch {
      return false;
    }
  }

  #entryFor(body: Record<string, unknown>, data: Record<string, unknown>): LeaseEntry | undefined {
    const leaseId = typeof body['lease_id'] === 'string' ? body['lease_id'] : '';
    const leaseSeconds = Number(body['lease_duration']);
    // KV v1 answers carry a lease_duration (its refresh interval) but no lease id: not dynamic.
    if (leaseId !== '' && leaseSeconds > 0) {
      const lifetimeMs = leaseSeconds * 1000;
      return {
        fields: new Secret(data),
        leaseId: new Secret(leaseId),
        renewable: body['renewable'] === true,
        issuedLifetimeMs: lifetimeMs,
        obtainedAt: this.now(),
        lifetimeMs,
      };
    }
    // A PKI certificate has no lease but says when it expires.
    const expiration = Number(data['expiration']);
    if (typeof data['certificate'] === 'string' && expiration > 0) {
      const lifetimeMs = expiration * 1000 - this.now();
      if (lifetimeMs <= 0) return undefined;
      return { fields: new Secret(data), renewable: false, issuedLifetimeMs: lifetimeMs, obtainedAt: this.now(), lifetimeMs };
    }
    return undefined;
  }
}

function leaseResult(entry: LeaseEntry): FetchResult {
  // Each Mount gets its own copy: the cached answer must not change under a later transform.
  return { content: fieldsContent(structuredClone(entry.fields.reveal())) };
}

/** Canonical JSON (sorted keys) so equal args share one cache entry. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
