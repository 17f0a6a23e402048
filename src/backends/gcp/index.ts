import type { Logger } from 'pino';
import { raceSignal } from '../../abort.js';
import { ProviderError } from '../../errors.js';
import type { BackendDefinition, BackendDeps, FetchContext, FetchRequest, FetchResult, StoreBackend, StoreSettings } from '../types.js';
import { accessError, readAccessAnswer } from './access.js';
import { createGcpApis, isOk, type GcpApis } from './client.js';
import { gcpStatics, tokenAudienceOf, type GcpObjectSpec, type GcpStoreOptions } from './options.js';
import { principalFor } from './principal.js';
import { accessPath, parseSecretRef } from './refs.js';
import { GcpTokens } from './tokens.js';

export { gcpObjectFields, gcpOptions, type GcpObjectSpec, type GcpStoreOptions } from './options.js';

/** Google Cloud Secret Manager, read as the pod through workload identity federation. */
export const gcpSecretManagerBackend: BackendDefinition<GcpStoreOptions, GcpObjectSpec> = {
  kind: 'gcp-secret-manager',
  ...gcpStatics,
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

  async #fetchAs(request: FetchRequest<GcpObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    const ref = parseSecretRef(request.ref, request.version, this.options);
    const principal = principalFor(this.options, request.spec, ctx.identity);
    // Asked even when a Google token is cached: a Mount must carry the pod's own token to use it.
    const podToken = ctx.tokenFor(tokenAudienceOf(this.options));
    const { client, peer } = this.apis.secretManager(ref.location);
    const read = (token: string) => client.call({ method: 'GET', path: accessPath(ref), headers: { authorization: `Bearer ${token}` }, signal: ctx.signal });
    let held = await this.#tokens.obtain(principal, ctx.identity, podToken);
    let answer = await read(held.token);
    if (answer.status === 401 && held.cached) {
      // A cached token Google no longer accepts: one fresh exchange within this attempt.
      this.#tokens.evict(principal, ctx.identity);
      held = await this.#tokens.obtain(principal, ctx.identity, podToken);
      answer = await read(held.token);
    }
    if (isOk(answer.status)) return readAccessAnswer(answer, ref, peer);
    throw accessError(answer, ref, principal, [podToken, held.token]);
  }
}

function cancelled(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed before Google answered');
}
