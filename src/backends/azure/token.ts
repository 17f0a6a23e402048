import type { Logger } from 'pino';
import { ProviderError } from '../../errors.js';
import { Secret } from '../../secret.js';
import { BoundedMap } from '../kit/bounded-map.js';
import type { HttpClient } from '../kit/http.js';
import { isObject } from '../kit/json-shape.js';
import { matchesPattern } from '../kit/placeholders.js';
import { quoteStoreText } from '../kit/redact.js';
import { createSingleFlight } from '../kit/single-flight.js';
import { statusError } from '../kit/transient.js';
import type { FetchContext } from '../types.js';
import type { AzureEndpoints, AzureStoreOptions } from './options.js';

interface TokenEntry {
  readonly token: Secret<string>;
  readonly obtainedAt: number;
  readonly expiresAt: number;
}

/** Who a fetch reads as: one application, federated with one service account. */
export interface AzureCaller {
  /** Cache key: authority, tenant, client id and the pod's service account; no secret material. */
  readonly key: string;
  /** How messages name the identity. */
  readonly describe: string;
  /** Strings that must never appear in messages (the pod's token, the access token). */
  readonly scrub: string[];
  obtain(): Promise<{ token: string; cached: boolean }>;
  evict(): void;
}

const maxCacheEntries = 10_000;

/**
 * Entra ID access tokens for Key Vault, obtained with the pod's token as the client assertion
 * (workload identity federation). Cached per (authority, tenant, client id, service account):
 * msal caches per credential object, which a node serving many service accounts cannot share.
 * A burst of Mounts of one identity waits for one exchange.
 */
export class AzureTokens {
  readonly #tokens = new BoundedMap<string, TokenEntry>(maxCacheEntries, (t) => !this.#isUsable(t));
  readonly #exchanges = createSingleFlight<TokenEntry>();

  constructor(
    private readonly opts: AzureStoreOptions,
    private readonly endpoints: AzureEndpoints,
    private readonly client: HttpClient,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  callerFor(ctx: FetchContext): AzureCaller {
    const clientId = this.#resolveClientId(ctx);
    // Asked even when a token is cached: a Mount must carry the pod's own token to use one.
    const assertion = ctx.tokenFor(this.opts.audience);
    const { namespace, serviceAccount } = ctx.identity;
    const key = [this.endpoints.authorityHost, this.opts.tenantId, clientId, namespace, serviceAccount].join('\u0000');
    const caller: AzureCaller = {
      key,
      describe: `application ${clientId} (service account ${namespace}/${serviceAccount})`,
      scrub: [assertion],
      obtain: async () => {
        const cached = this.#tokens.get(key);
        if (cached && this.#isUsable(cached)) return { token: remember(cached), cached: true };
        this.#tokens.delete(key);
        const entry = await this.#exchanges.run(key, async () => {
          const fresh = await this.#exchange(clientId, assertion, ctx, caller.scrub);
          this.#tokens.set(key, fresh);
          return fresh;
        });
        return { token: remember(entry), cached: false };
      },
      evict: () => this.#tokens.delete(key),
    };
    const remember = (entry: TokenEntry) => {
      const token = entry.token.reveal();
      if (!caller.scrub.includes(token)) caller.scrub.push(token);
      return token;
    };
    return caller;
  }

  clear(): void {
    this.#tokens.clear();
  }

  /** The store's client id, or the one the class names in `role` where allowedClientIds lets it. */
  #resolveClientId(ctx: FetchContext): string {
    const asked = ctx.parameters.role;
    if (asked === undefined || asked === '' || asked === this.opts.clientId) {
      if (this.opts.clientId !== undefined) return this.opts.clientId;
      throw new ProviderError('InvalidArgument', 'this store has no default clientId: the class must name the application (client) id in its "role" parameter');
    }
    const allowed = this.opts.allowedClientIds ?? [];
    if (!allowed.some((pattern) => matchesPattern(pattern, asked, ctx.identity))) {
      throw new ProviderError(
        'PermissionDenied',
        `client id ${JSON.stringify(asked.slice(0, 64))} named by the class is not allowed for service account ${ctx.identity.namespace}/${ctx.identity.serviceAccount} (see the store's allowedClientIds)`,
      );
    }
    return asked;
  }

  /** Usable until shortly before it expires, so a read never races the expiry. */
  #isUsable(entry: TokenEntry): boolean {
    const margin = Math.min((entry.expiresAt - entry.obtainedAt) / 10, 5 * 60_000);
    return this.now() < entry.expiresAt - margin;
  }

  async #exchange(clientId: string, assertion: string, ctx: FetchContext, scrub: readonly string[]): Promise<TokenEntry> {
    const form = new URLSearchParams({
      client_id: clientId,
      scope: this.endpoints.scope,
      grant_type: 'client_credentials',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    const answer = await this.client.call({ method: 'POST', path: `${encodeURIComponent(this.opts.tenantId)}/oauth2/v2.0/token`, form });
    const body = isObject(answer.json) ? answer.json : {};
    if (answer.status < 200 || answer.status >= 300) throw exchangeError(answer.status, body, { clientId, assertion, ctx, audience: this.opts.audience, scrub }, answer.retryAfterSeconds);
    const token = body['access_token'];
    const expiresIn = Number(body['expires_in']);
    if (typeof token !== 'string' || token === '' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw new ProviderError('Unavailable', `Entra ID answered the token request for application ${clientId} without an access token and its lifetime`, { transient: true });
    }
    this.logger.debug({ clientId, expiresIn }, 'obtained an Entra ID access token');
    const obtainedAt = this.now();
    return { token: new Secret(token), obtainedAt, expiresAt: obtainedAt + expiresIn * 1000 };
  }
}

interface ExchangeScope {
  readonly clientId: string;
  readonly assertion: string;
  readonly ctx: FetchContext;
  readonly audience: string;
  readonly scrub: readonly string[];
}

/** A refused exchange, naming Entra's AADSTS code; a federation miss names what Entra compared. */
function exchangeError(status: number, body: Record<string, unknown>, scope: ExchangeScope, retryAfterSeconds?: number): ProviderError {
  const codes = Array.isArray(body['error_codes']) ? body['error_codes'] : [];
  const description = typeof body['error_description'] === 'string' ? body['error_description'] : '';
  const firstLine = quoteStoreText(description.split(/\r?\n/)[0] ?? '', scope.scrub, 200);
  const { namespace, serviceAccount } = scope.ctx.identity;
  if (codes.includes(70021) || description.startsWith('AADSTS70021')) {
    const issuer = issuerOf(scope.assertion);
    return new ProviderError(
      'PermissionDenied',
      `Entra ID found no federated credential of application ${scope.clientId} matching the pod's token (AADSTS70021): ` +
        `subject "system:serviceaccount:${namespace}:${serviceAccount}", audience "${scope.audience}"${issuer ? `, issuer "${issuer}"` : ''}; ` +
        'add a federated identity credential with exactly these values',
    );
  }
  const what = `Entra ID refused the token request of application ${scope.clientId} for service account ${namespace}/${serviceAccount}`;
  const detail = firstLine ? `: ${firstLine}` : typeof body['error'] === 'string' ? `: ${quoteStoreText(body['error'], scope.scrub, 60)}` : '';
  if (status === 400 || status === 401) return new ProviderError('PermissionDenied', `${what} (HTTP ${status})${detail}`);
  return statusError(status, `${what} (HTTP ${status})${detail}`, retryAfterSeconds);
}

/** The issuer claim of the pod's token, to name in a federation miss; not verified, only quoted. */
function issuerOf(jwt: string): string | undefined {
  try {
    const claims: unknown = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
    const iss = isObject(claims) ? claims['iss'] : undefined;
    return typeof iss === 'string' && /^[\x21-\x7e]{1,200}$/.test(iss) ? iss : undefined;
  } catch {
    return undefined;
  }
}
