import type { Logger } from 'pino';
import { raceSignal } from '../../abort.js';
import { ProviderError } from '../../errors.js';
import type { HttpAnswer } from '../kit/http.js';
import { readTlsMaterial } from '../kit/tls.js';
import type { BackendDefinition, BackendDeps, FetchContext, FetchRequest, FetchResult, ListPage, ListRequest, StoreBackend, StoreSettings } from '../types.js';
import { accessError, readAccessAnswer } from './access.js';
import { createGcpApis, isOk, type GcpApis } from './client.js';
import { gcpStatics, tokenAudienceOf, type GcpObjectSpec, type GcpStoreOptions } from './options.js';
import { listError, listQuery, parentOf, readListAnswer } from './list.js';
import { principalFor, type Principal } from './principal.js';
import { accessPath, parseSecretPrefix, parseSecretRef } from './refs.js';
import { GcpTokens } from './tokens.js';

export { gcpObjectFields, gcpOptions, type GcpObjectSpec, type GcpStoreOptions } from './options.js';

/** Google Cloud Secret Manager, read as the pod through workload identity federation. */
export const gcpSecretManagerBackend: BackendDefinition<GcpStoreOptions, GcpObjectSpec> = {
  kind: 'gcp-secret-manager',
  ...gcpStatics,
  async preflight({ options }, { baseDir }) {
    await readTlsMaterial(options.tls, baseDir);
  },
  create: createGcpStore,
};

async function createGcpStore({ name, options }: StoreSettings<GcpStoreOptions>, deps: BackendDeps): Promise<StoreBackend<GcpObjectSpec>> {
  const apis = await createGcpApis(options, deps.baseDir);
  return new GcpStore(name, options, apis, deps.now, deps.logger.child({ backend: 'gcp-secret-manager' }));
}

class GcpStore implements StoreBackend<GcpObjectSpec> {
  readonly #tokens: GcpTokens;

  constructor(
    readonly name: string,
    private readonly options: GcpStoreOptions,
    private readonly apis: GcpApis,
    now: () => number,
    logger: Logger,
  ) {
    this.#tokens = new GcpTokens(options.audience, options.delegates ?? [], apis, now, logger);
  }

  fetch(request: FetchRequest<GcpObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    // Token exchanges are shared between Mounts, so a cancelled Mount stops waiting instead.
    return raceSignal(this.#fetchAs(request, ctx), ctx.signal, cancelled);
  }

  async close(): Promise<void> {
    this.apis.close();
    this.#tokens.clear();
  }

  list(request: ListRequest<GcpObjectSpec>, ctx: FetchContext): Promise<ListPage> {
    return raceSignal(this.#listAs(request, ctx), ctx.signal, cancelled);
  }

  async #fetchAs(request: FetchRequest<GcpObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    const ref = parseSecretRef(request.ref, request.version, this.options);
    const principal = principalFor(this.options, request.spec, ctx.identity);
    const { client, peer } = this.apis.secretManager(ref.location);
    const { answer, scrub } = await this.#callAs(principal, ctx, (token) =>
      client.call({ method: 'GET', path: accessPath(ref), headers: { authorization: `Bearer ${token}` }, signal: ctx.signal }),
    );
    if (isOk(answer.status)) return readAccessAnswer(answer, ref, peer);
    throw accessError(answer, ref, principal, scrub);
  }

  /** One page of `secrets.list` (permission secretmanager.secrets.list) as the principal that reads. */
  async #listAs(request: ListRequest<GcpObjectSpec>, ctx: FetchContext): Promise<ListPage> {
    const prefix = parseSecretPrefix(request.prefix, this.options);
    const query = listQuery(prefix, request.labels, request.page);
    const principal = principalFor(this.options, request.spec, ctx.identity);
    const { client, peer } = this.apis.secretManager(prefix.location);
    const { answer, scrub } = await this.#callAs(principal, ctx, (token) =>
      client.call({ method: 'GET', path: `/v1/${parentOf(prefix)}`, query, headers: { authorization: `Bearer ${token}` }, signal: ctx.signal }),
    );
    if (isOk(answer.status)) return readListAnswer(answer, prefix, request.labels, peer);
    throw listError(answer, prefix, principal, scrub);
  }

  /** One call with the principal's Google token; a cached token Google no longer accepts gets one fresh exchange. */
  async #callAs(principal: Principal, ctx: FetchContext, send: (token: string) => Promise<HttpAnswer>): Promise<{ answer: HttpAnswer; scrub: string[] }> {
    // Asked even when a Google token is cached: a Mount must carry the pod's own token to use it.
    const podToken = ctx.tokenFor(tokenAudienceOf(this.options));
    let held = await this.#tokens.obtain(principal, ctx.identity, podToken);
    let answer = await send(held.token);
    if (answer.status === 401 && held.cached) {
      this.#tokens.evict(principal, ctx.identity);
      held = await this.#tokens.obtain(principal, ctx.identity, podToken);
      answer = await send(held.token);
    }
    return { answer, scrub: [podToken, held.token] };
  }
}

function cancelled(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed before Google answered');
}
