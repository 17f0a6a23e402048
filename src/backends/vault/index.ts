import type { Logger } from 'pino';
import { raceSignal } from '../../abort.js';
import { ProviderError } from '../../errors.js';
import { isWellFormed } from '../../util.js';
import type { BackendDefinition, FetchContext, FetchRequest, FetchResult, ListPage, ListRequest, StoreBackend } from '../types.js';
import { readTlsMaterial } from '../kit/tls.js';
import { VaultAuth } from './auth.js';
import { createVaultClient, type VaultClient } from './client.js';
import { parseVersionPin, VaultKv } from './kv.js';
import { listKvPage } from './list.js';
import { VaultLeases } from './leases.js';
import { checkVaultStore, vaultAudiences, vaultDocs, vaultObjectFields, vaultOptions, type VaultObjectSpec, type VaultStoreOptions } from './options.js';

export { vaultObjectFields, type VaultObjectSpec, type VaultStoreOptions } from './options.js';

/** HashiCorp Vault, logging in as the pod. */
export const vaultBackend: BackendDefinition<VaultStoreOptions, VaultObjectSpec> = {
  kind: 'vault',
  options: vaultOptions,
  objectFields: vaultObjectFields,
  audiences: vaultAudiences,
  docs: vaultDocs,
  checkStore: checkVaultStore,
  async preflight({ options }, { baseDir }) {
    if (options.address.startsWith('https:')) await readTlsMaterial(options.tls, baseDir);
  },
  async create({ name, options }, { baseDir, logger, now }) {
    const client = await createVaultClient(options, baseDir);
    // The logger already names the store.
    return new VaultStore(name, options, client, now, logger.child({ backend: 'vault' }));
  },
};

class VaultStore implements StoreBackend<VaultObjectSpec> {
  readonly #auth: VaultAuth;
  readonly #kv: VaultKv;
  readonly #leases: VaultLeases;

  constructor(
    readonly name: string,
    options: VaultStoreOptions,
    private readonly client: VaultClient,
    now: () => number,
    logger: Logger,
  ) {
    this.#auth = new VaultAuth(options.auth, client, now, logger);
    this.#kv = new VaultKv(options.kvVersion, this.#auth);
    this.#leases = new VaultLeases(this.#auth, now, logger);
  }

  fetch(request: FetchRequest<VaultObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    // Logins and dynamic issues are shared between Mounts, so a cancelled Mount stops waiting instead.
    return raceSignal(this.#fetchAs(request, ctx), ctx.signal, cancelled);
  }

  list(request: ListRequest<VaultObjectSpec>, ctx: FetchContext): Promise<ListPage> {
    return raceSignal(listKvPage(this.#kv, this.#auth, this.#auth.callerFor(ctx), request, ctx.signal), ctx.signal, cancelled);
  }

  async close(): Promise<void> {
    this.client.close();
    this.#auth.clear();
    this.#leases.clear();
  }

  async #fetchAs(request: FetchRequest<VaultObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    const segments = splitRef(request.ref);
    const versionPin = parseVersionPin(request.version);
    const caller = this.#auth.callerFor(ctx);
    const mount = request.spec.method === 'GET' ? await this.#kv.mountFor(segments, caller, ctx.signal) : undefined;
    if (mount?.kvVersion !== undefined) return this.#kv.read(segments, mount, versionPin, caller, ctx.signal);
    if (versionPin !== undefined) {
      throw new ProviderError('InvalidArgument', `version applies only to KV v2 secrets; "${segments.join('/')}" is not one`);
    }
    return this.#leases.fetch(segments, request.spec, caller);
  }
}

const segmentPattern = /^[^\s?#%\\\u0000-\u001f]+$/;

/** Validates a ref like `secret/data/app` and returns its segments. */
function splitRef(ref: string): string[] {
  const segments = ref.replace(/^\/+|\/+$/g, '').split('/');
  const bad = !isWellFormed(ref) || segments.some((s) => s === '' || s === '.' || s === '..' || !segmentPattern.test(s));
  if (bad || segments.length < 2) {
    throw new ProviderError('InvalidArgument', 'ref must be a Vault path like "secret/data/app" (no empty, "." or ".." segments, no ?, # or %, valid Unicode)');
  }
  return segments;
}

function cancelled(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed before Vault answered');
}
