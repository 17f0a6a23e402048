import { raceSignal } from '../../abort.js';
import { ProviderError } from '../../errors.js';
import { createHttpClient, type HttpClient } from '../kit/http.js';
import { readTlsMaterial } from '../kit/tls.js';
import type { BackendDefinition, FetchContext, FetchRequest, FetchResult, ListPage, ListRequest, StoreBackend } from '../types.js';
import { contentOf } from './items.js';
import { listSecretsPage, type VaultTarget } from './list.js';
import { azureObjectFields, azureOptions, checkAzureStore, endpointsOf, type AzureObjectSpec, type AzureStoreOptions } from './options.js';
import { AzureTokens } from './token.js';
import { parseItemRef, readItem, versionOf } from './vault.js';

export { azureObjectFields, azureOptions, type AzureObjectSpec, type AzureStoreOptions } from './options.js';

/** Azure Key Vault, read as the pod through Entra ID workload identity federation. */
export const azureKeyVaultBackend: BackendDefinition<AzureStoreOptions, AzureObjectSpec> = {
  kind: 'azure-key-vault',
  options: azureOptions,
  objectFields: azureObjectFields,
  // The pod's token is the client assertion of every exchange.
  audiences: (options) => [options.audience],
  docs: {
    summary: 'Azure Key Vault secrets, keys and certificates, read as the pod through Entra ID workload identity federation.',
    guide: '[docs/azure.md](azure.md)',
    ref: 'The name of a secret, key or certificate in the vault (`kind` says which).',
  },
  checkStore: checkAzureStore,
  async preflight({ options }, { baseDir }) {
    await readTlsMaterial(options.tls, baseDir);
  },
  async create({ name, options }, { baseDir, logger, now }) {
    const endpoints = endpointsOf(options);
    const tls = await readTlsMaterial(options.tls, baseDir);
    const client = (url: string, peer: string) =>
      createHttpClient({ url, peer, timeoutMs: options.timeout, tls, tlsHint: 'check tls.caFile' });
    const vault = { client: client(endpoints.vaultUrl, `Key Vault at ${endpoints.vaultUrl}`), url: endpoints.vaultUrl, apiVersion: options.apiVersion };
    const entra = client(endpoints.authorityHost, `Entra ID at ${endpoints.authorityHost}`);
    const tokens = new AzureTokens(options, endpoints, entra, now, logger.child({ backend: 'azure-key-vault' }));
    return new AzureKeyVaultStore(name, vault, entra, tokens);
  },
};

class AzureKeyVaultStore implements StoreBackend<AzureObjectSpec> {
  constructor(
    readonly name: string,
    private readonly vault: VaultTarget,
    private readonly entra: HttpClient,
    private readonly tokens: AzureTokens,
  ) {}

  fetch(request: FetchRequest<AzureObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    // Token exchanges are shared between Mounts, so a cancelled Mount stops waiting instead.
    return raceSignal(this.#fetchAs(request, ctx), ctx.signal, cancelled);
  }

  list(request: ListRequest<AzureObjectSpec>, ctx: FetchContext): Promise<ListPage> {
    const listing = async () => listSecretsPage(this.vault, request, this.tokens.callerFor(ctx), ctx.signal);
    return raceSignal(listing(), ctx.signal, cancelled);
  }

  async close(): Promise<void> {
    this.vault.client.close();
    this.entra.close();
    this.tokens.clear();
  }

  async #fetchAs(request: FetchRequest<AzureObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    const item = parseItemRef(request.spec.kind, request.ref, request.version);
    const caller = this.tokens.callerFor(ctx);
    const body = await readItem(this.vault.client, this.vault.apiVersion, item, caller, ctx.signal);
    const content = await contentOf(item, request.spec, body);
    const version = versionOf(body['id'] ?? (body['key'] as { kid?: unknown } | undefined)?.kid);
    return { content, ...(version !== undefined ? { version } : {}) };
  }
}

function cancelled(): ProviderError {
  return new ProviderError('DeadlineExceeded', 'the Mount was cancelled or its deadline passed before Azure answered');
}
