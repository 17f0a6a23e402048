import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { ProviderError } from '../../errors.js';
import { Secret } from '../../secret.js';
import { BoundedMap } from '../kit/bounded-map.js';
import { isObject } from '../kit/json-shape.js';
import { fillPlaceholders } from '../kit/placeholders.js';
import { createSingleFlight } from '../kit/single-flight.js';
import type { FetchContext } from '../types.js';
import { encodePath, isOk, vaultStatusError, type Speaker, type VaultAnswer, type VaultCall, type VaultClient } from './client.js';
import type { LoginAuthOptions, VaultStoreOptions } from './options.js';

interface TokenEntry {
  readonly token: Secret<string>;
  obtainedAt: number;
  ttlMs: number;
  renewable: boolean;
}

interface HeldToken {
  readonly entry: TokenEntry;
  /** Came from the cache rather than a login this fetch waited for; a 403 may mean it was revoked. */
  readonly cached: boolean;
}

/** Who a fetch authenticates as. */
export interface Caller extends Speaker {
  /** Cache key of the identity; holds no secret material. */
  readonly key: string;
  obtain(): Promise<HeldToken>;
  evict(entry: TokenEntry): void;
}

/** Per-identity caches stay bounded however many service accounts a node serves. */
export const maxCacheEntries = 10_000;

/** Vault tokens per identity: logins, their reuse and renewal, and calls made with them. */
export class VaultAuth {
  readonly #tokens = new BoundedMap<string, TokenEntry>(maxCacheEntries, (t) => !this.#isUsable(t));
  readonly #logins = createSingleFlight<TokenEntry>();
  readonly #renewals = createSingleFlight<void>();

  constructor(
    private readonly auth: VaultStoreOptions['auth'],
    private readonly client: VaultClient,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  callerFor(ctx: FetchContext): Caller {
    const auth = this.auth;
    return auth.method === 'token' ? this.#staticTokenCaller(auth.allowTokenFromSecret, ctx) : this.#loginCaller(auth, ctx);
  }

  /** Calls Vault with the caller's token; a 403 with a cached token evicts it and logs in again once. */
  async callAs(caller: Caller, call: Omit<VaultCall, 'token'>): Promise<VaultAnswer> {
    const held = await caller.obtain();
    const res = await this.client.call({ ...call, token: held.entry.token.reveal() });
    if (res.status !== 403 || !held.cached) return res;
    caller.evict(held.entry);
    const again = await caller.obtain();
    return this.client.call({ ...call, token: again.entry.token.reveal() });
  }

  clear(): void {
    this.#tokens.clear();
  }

  #staticTokenCaller(allowed: boolean, ctx: FetchContext): Caller {
    if (!allowed) {
      throw new ProviderError('PermissionDenied', 'this store does not accept Vault tokens from nodePublishSecretRef');
    }
    const token = ctx.secrets.get('token')?.reveal();
    if (token === undefined || token === '') {
      throw new ProviderError('InvalidArgument', 'this store authenticates with a Vault token from nodePublishSecretRef key "token", which the Mount did not carry');
    }
    const entry: TokenEntry = { token: new Secret(token), obtainedAt: this.now(), ttlMs: 0, renewable: false };
    const digest = createHash('sha256').update(token).digest('hex').slice(0, 32);
    return {
      key: `${ctx.identity.namespace}\u0000${ctx.identity.serviceAccount}\u0000token:${digest}`,
      describe: 'the Vault token from nodePublishSecretRef',
      scrub: [token],
      obtain: async () => ({ entry, cached: false }),
      evict: () => {},
    };
  }

  #loginCaller(auth: LoginAuthOptions, ctx: FetchContext): Caller {
    const role = resolveRole(auth, ctx);
    const mount = auth.mount ?? auth.method;
    // Asked even when a Vault token is cached: a Mount must carry the pod's own token to use it.
    const jwt = ctx.tokenFor(auth.audience);
    const { namespace, serviceAccount } = ctx.identity;
    const key = `${namespace}\u0000${serviceAccount}\u0000${role}`;
    const describe = `role "${role}" via auth mount "${mount}" (service account ${namespace}/${serviceAccount})`;
    const scrub = [jwt];
    return {
      key,
      describe,
      scrub,
      obtain: () => this.#obtainToken(key, () => this.#login(mount, role, jwt, { describe, scrub })),
      evict: (entry) => {
        if (this.#tokens.get(key) === entry) this.#tokens.delete(key);
      },
    };
  }

  async #obtainToken(key: string, login: () => Promise<TokenEntry>): Promise<HeldToken> {
    const cached = this.#tokens.get(key);
    if (cached && this.#isUsable(cached)) {
      if (cached.renewable && this.#isPastHalfLife(cached)) await this.#renewToken(key, cached);
      const current = this.#tokens.get(key);
      if (current && this.#isUsable(current)) return { entry: current, cached: true };
    }
    this.#tokens.delete(key);
    const entry = await this.#logins.run(key, async () => {
      const fresh = await login();
      this.#tokens.set(key, fresh);
      return fresh;
    });
    return { entry, cached: false };
  }

  /** Usable until shortly before its TTL ends, so a read never races the expiry. */
  #isUsable(entry: TokenEntry): boolean {
    if (entry.ttlMs <= 0) return true;
    const margin = Math.min(entry.ttlMs / 10, 60_000);
    return this.now() < entry.obtainedAt + entry.ttlMs - margin;
  }

  #isPastHalfLife(entry: TokenEntry): boolean {
    return entry.ttlMs > 0 && this.now() >= entry.obtainedAt + entry.ttlMs / 2;
  }

  async #renewToken(key: string, entry: TokenEntry): Promise<void> {
    await this.#renewals.run(key, async () => {
      try {
        const res = await this.client.call({ method: 'POST', path: 'auth/token/renew-self', token: entry.token.reveal(), body: {} });
        const renewed = isOk(res.status) ? readAuth(res.body) : undefined;
        if (renewed) {
          entry.obtainedAt = this.now();
          entry.ttlMs = renewed.ttlMs;
          entry.renewable = renewed.renewable;
          this.logger.debug({ ttlMs: renewed.ttlMs }, 'renewed Vault token');
        } else if (res.status === 403) {
          this.#tokens.delete(key);
        } else if (res.status === 400) {
          // "not renewable" or past its max TTL: use it as it is until it nears expiry.
          entry.renewable = false;
        }
      } catch {
        // A failed renewal leaves the token as it was; it is still valid until its TTL.
      }
    });
  }

  async #login(mount: string, role: string, jwt: string, speaker: Speaker): Promise<TokenEntry> {
    const res = await this.client.call({ method: 'POST', path: `auth/${encodePath(mount.split('/'))}/login`, body: { role, jwt } });
    if (!isOk(res.status)) throw vaultStatusError(res, `Vault login failed for ${speaker.describe}`, speaker.scrub);
    const parsed = readAuth(res.body);
    if (!parsed) throw new ProviderError('Unavailable', `Vault login for ${speaker.describe} answered without a client token`);
    this.logger.debug({ mount, role, ttlMs: parsed.ttlMs }, 'logged in to Vault');
    return { token: new Secret(parsed.token), obtainedAt: this.now(), ttlMs: parsed.ttlMs, renewable: parsed.renewable };
  }
}

/** The login role: derived from the pod by the store's template, or named by the class or the store. */
function resolveRole(auth: LoginAuthOptions, ctx: FetchContext): string {
  const asked = ctx.parameters.role;
  if (auth.roleTemplate !== undefined) {
    const derived = fillPlaceholders(auth.roleTemplate, ctx.identity);
    if (asked !== undefined && asked !== derived) {
      throw new ProviderError(
        'InvalidArgument',
        `role "${asked}" is not allowed: this store derives the Vault role "${derived}" from the pod; omit the role parameter`,
      );
    }
    return derived;
  }
  const role = asked ?? auth.role;
  if (role === undefined || role === '') {
    throw new ProviderError('InvalidArgument', 'no Vault role: set the class parameter "role" or the store\'s auth.role');
  }
  return role;
}

function readAuth(body: Record<string, unknown>): { token: string; ttlMs: number; renewable: boolean } | undefined {
  const auth = body['auth'];
  const token = isObject(auth) ? auth['client_token'] : undefined;
  if (!isObject(auth) || typeof token !== 'string' || token === '') return undefined;
  const seconds = Number(auth['lease_duration']);
  return { token, ttlMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0, renewable: auth['renewable'] === true };
}
