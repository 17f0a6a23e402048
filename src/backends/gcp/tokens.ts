import type { Logger } from 'pino';
import { ProviderError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import { Secret } from '../../secret.js';
import { BoundedMap } from '../kit/bounded-map.js';
import type { HttpAnswer } from '../kit/http.js';
import { isObject } from '../kit/json-shape.js';
import { quoteStoreText } from '../kit/redact.js';
import { createSingleFlight } from '../kit/single-flight.js';
import { answerError, describeAnswer, isOk, malformedAnswer, type GcpApis } from './client.js';
import type { Principal } from './principal.js';

interface AccessToken {
  readonly token: Secret<string>;
  readonly obtainedAt: number;
  readonly expiresAt: number;
}

/** A token to read with, and whether it came from the cache (a 401 then means it went stale). */
export interface HeldToken {
  readonly token: string;
  readonly cached: boolean;
}

const cloudPlatform = 'https://www.googleapis.com/auth/cloud-platform';

/**
 * Google access tokens per (audience, impersonated account, pod service account): the federated
 * token from STS, and the impersonated one from IAM credentials on top of it. Each is fetched once
 * per burst and reused until shortly before it expires; no entry serves another service account.
 */
export class GcpTokens {
  readonly #flights = createSingleFlight<AccessToken>();
  /** Bounded however many identities a node serves. */
  readonly #cache = new BoundedMap<string, AccessToken>(10_000, (t) => !this.#isUsable(t));

  constructor(
    private readonly audience: string,
    private readonly delegates: readonly string[],
    private readonly apis: GcpApis,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  /** The token `principal` reads with; `podToken` is the pod's, for the exchange if one is needed. */
  async obtain(principal: Principal, identity: Identity, podToken: string): Promise<HeldToken> {
    const target = principal.serviceAccount;
    const key = this.#keyOf(target, identity);
    const cached = this.#cache.get(key);
    if (cached && this.#isUsable(cached)) return { token: cached.token.reveal(), cached: true };
    const fresh = await this.#flights.run(key, async () => {
      const federated = await this.#federated(principal, identity, podToken);
      const token = target === undefined ? federated : await this.#impersonate(target, principal, federated);
      this.#cache.set(key, token);
      return token;
    });
    return { token: fresh.token.reveal(), cached: false };
  }

  /** Drops what `principal` holds (its impersonated and federated tokens), after Google refused one. */
  evict(principal: Principal, identity: Identity): void {
    this.#cache.delete(this.#keyOf(principal.serviceAccount, identity));
    this.#cache.delete(this.#keyOf(undefined, identity));
  }

  clear(): void {
    this.#cache.clear();
  }

  #keyOf(serviceAccount: string | undefined, identity: Identity): string {
    return [this.audience, serviceAccount ?? '', identity.namespace, identity.serviceAccount].join('\u0000');
  }

  async #federated(principal: Principal, identity: Identity, podToken: string): Promise<AccessToken> {
    if (principal.serviceAccount === undefined) return this.#exchange(principal, podToken);
    const key = this.#keyOf(undefined, identity);
    const cached = this.#cache.get(key);
    if (cached && this.#isUsable(cached)) return cached;
    return this.#flights.run(key, async () => {
      const token = await this.#exchange(principal, podToken);
      this.#cache.set(key, token);
      return token;
    });
  }

  /** Usable until shortly before it expires (a tenth of its life, at most five minutes), so a read never races the expiry. */
  #isUsable(entry: AccessToken): boolean {
    const margin = Math.min((entry.expiresAt - entry.obtainedAt) / 10, 300_000);
    return this.now() < entry.expiresAt - margin;
  }

  async #exchange(principal: Principal, podToken: string): Promise<AccessToken> {
    const form = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      audience: this.audience,
      scope: cloudPlatform,
      requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      subject_token: podToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    });
    const answer = await this.apis.sts.call({ method: 'POST', path: '/v1/token', form });
    if (!isOk(answer.status)) throw stsError(answer, this.audience, principal, [podToken]);
    const body = isObject(answer.json) ? answer.json : undefined;
    const token = body?.['access_token'];
    const seconds = body?.['expires_in'];
    if (typeof token !== 'string' || token === '' || typeof seconds !== 'number' || !(seconds > 0)) {
      throw malformedAnswer('Google STS', 'the token exchange', 'no access_token and expires_in');
    }
    this.logger.debug({ subject: principal.subject, expiresInSeconds: seconds }, 'exchanged the pod token at Google STS');
    const obtainedAt = this.now();
    return { token: new Secret(token), obtainedAt, expiresAt: obtainedAt + seconds * 1000 };
  }

  async #impersonate(serviceAccount: string, principal: Principal, federated: AccessToken): Promise<AccessToken> {
    const bearer = federated.token.reveal();
    const answer = await this.apis.iam.call({
      method: 'POST',
      path: `/v1/projects/-/serviceAccounts/${encodeURIComponent(serviceAccount)}:generateAccessToken`,
      headers: { authorization: `Bearer ${bearer}` },
      json: {
        scope: [cloudPlatform],
        lifetime: '3600s',
        ...(this.delegates.length > 0 ? { delegates: this.delegates.map((d) => `projects/-/serviceAccounts/${d}`) } : {}),
      },
    });
    if (!isOk(answer.status)) throw this.#impersonationError(answer, serviceAccount, principal, bearer);
    const body = isObject(answer.json) ? answer.json : undefined;
    const token = body?.['accessToken'];
    const expiresAt = typeof body?.['expireTime'] === 'string' ? Date.parse(body['expireTime']) : Number.NaN;
    if (typeof token !== 'string' || token === '' || Number.isNaN(expiresAt)) {
      throw malformedAnswer('IAM credentials', 'generateAccessToken', 'no accessToken and expireTime');
    }
    this.logger.debug({ subject: principal.subject, serviceAccount, expireTime: new Date(expiresAt).toISOString() }, 'impersonated a Google service account');
    return { token: new Secret(token), obtainedAt: this.now(), expiresAt };
  }

  #impersonationError(answer: HttpAnswer, serviceAccount: string, principal: Principal, bearer: string): ProviderError {
    const told = describeAnswer(answer, [bearer]);
    if (answer.status === 403 || answer.status === 401) {
      const chain = this.delegates.length > 0 ? `, and each account of the delegation chain ${this.delegates.join(' -> ')} roles/iam.serviceAccountTokenCreator on the next` : '';
      return new ProviderError(
        'PermissionDenied',
        `${principal.federated} may not impersonate service account ${serviceAccount}: it needs roles/iam.workloadIdentityUser on ${serviceAccount}${chain} ${told}`,
      );
    }
    if (answer.status === 404) return new ProviderError('NotFound', `service account ${serviceAccount} does not exist ${told}`);
    return answerError(answer, `IAM credentials failed generateAccessToken for service account ${serviceAccount}`, [bearer]);
  }
}

/** STS refuses with OAuth errors: `{"error": "invalid_grant", "error_description": "..."}`. */
function stsError(answer: HttpAnswer, audience: string, principal: Principal, scrub: readonly string[]): ProviderError {
  if (answer.status >= 400 && answer.status < 500 && answer.status !== 429) {
    const body = isObject(answer.json) ? answer.json : {};
    const code = typeof body['error'] === 'string' ? body['error'] : `HTTP ${answer.status}`;
    const description = typeof body['error_description'] === 'string' ? `: ${quoteStoreText(body['error_description'], scrub, 200)}` : '';
    return new ProviderError(
      'PermissionDenied',
      `Google STS refused the pod token of ${principal.subject} for audience "${audience}" (${code}${description}); check the pool provider's issuer, allowed audiences and attribute conditions`,
    );
  }
  return answerError(answer, 'Google STS failed the token exchange', scrub);
}
