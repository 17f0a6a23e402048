import type { z } from 'zod';
import type { Logger } from 'pino';
import type { Identity, TokenSource } from '../identity.js';
import type { Secret } from '../secret.js';

/**
 * What a store returns for one object. `bytes` is an opaque value (a file, a string secret);
 * `fields` is a structured secret whose top-level values are Buffers (exact bytes, e.g. a
 * Kubernetes Secret's data) or JSON values (e.g. a Vault KV secret).
 */
export type Content =
  | { readonly kind: 'bytes'; readonly data: Buffer }
  | { readonly kind: 'fields'; readonly fields: Readonly<Record<string, unknown>> };

export interface FetchResult {
  readonly content: Secret<Content>;
  /** The store's own version id where it has one; must not reveal content. */
  readonly version?: string;
}

export interface FetchRequest<Spec> {
  readonly ref: string;
  readonly version?: string;
  /** Backend-specific object fields, as parsed by the definition's `objectFields`. */
  readonly spec: Spec;
}

/** Everything a backend may know about the Mount it serves. */
export interface FetchContext extends TokenSource {
  readonly identity: Identity;
  /** Class parameters a backend may use (e.g. the default login role). */
  readonly parameters: { readonly role?: string };
  /** nodePublishSecretRef data; only for stores that allow static credentials. */
  readonly secrets: ReadonlyMap<string, Secret<string>>;
  readonly signal: AbortSignal;
}

/**
 * One configured store: an instance of a backend.
 *
 * Retries have one owner: the store guard (`stores/guard.ts`). A backend makes one attempt per
 * `fetch` (SDK clients run with `maxAttempts: 1`) and says whether its failure is worth another
 * through `ProviderError.transient`, set by the kit's one classification (`kit/transient.ts`).
 * The guard retries transient failures with backoff and the store's `Retry-After`, within the
 * Mount's deadline and behind the circuit breaker. What happens inside one attempt stays the
 * backend's: failover to a second region, a fresh login after a revoked cached token.
 */
export interface StoreBackend<Spec = unknown> {
  /** The store's name from the provider config. */
  readonly name: string;
  fetch(request: FetchRequest<Spec>, ctx: FetchContext): Promise<FetchResult>;
  /**
   * One page of a listing (a `find` object), as the pod with the store's own list authorisation.
   * One attempt per page, like `fetch`; the caller pages, retries, caches and applies access
   * rules. Stores that cannot list leave it out.
   */
  list?(request: ListRequest<Spec>, ctx: FetchContext): Promise<ListPage>;
  close(): Promise<void>;
}

/** What a `find` object selects: refs under a prefix, optionally with labels (tags). */
export interface ListRequest<Spec> {
  /** A ref prefix in the store's own ref form; found refs start with it. */
  readonly prefix: string;
  /** Also list below the prefix's folder (stores with folders: file, vault, parameter store). */
  readonly recursive: boolean;
  /** Labels or tags every match must carry; empty for none. Stores without labels refuse any. */
  readonly labels: Readonly<Record<string, string>>;
  /** The store's paging token from the previous page; undefined for the first page. */
  readonly page?: string;
  /** Backend-specific object fields of the find object. */
  readonly spec: Spec;
}

/** One secret a listing found. */
export interface ListedSecret {
  /** The full ref, as `fetch` takes it. */
  readonly ref: string;
  /** Present where the list call returns values; otherwise the caller reads the ref with `fetch`. */
  readonly value?: FetchResult;
}

export interface ListPage {
  readonly items: readonly ListedSecret[];
  /** Token of the next page; undefined on the last. Opaque to the caller and never logged. */
  readonly next?: string;
}

export interface BackendDeps {
  /** Already bound to the store's name. */
  readonly logger: Logger;
  /** Directory of the provider config file; relative paths in store options resolve against it. */
  readonly baseDir: string;
  /** Clock in milliseconds since the epoch; tests inject one to move time without sleeping. */
  readonly now: () => number;
}

export interface StoreSettings<Options> {
  readonly name: string;
  readonly options: Options;
  /** Whether the store's access rules restrict namespaces (some identities require it). */
  readonly restrictsNamespaces: boolean;
}

/** How the reference docs present a backend kind. */
export interface BackendDocs {
  /** One sentence: what the store reads and as whom. */
  readonly summary: string;
  /** Markdown link to the guide, relative to `docs/`. */
  readonly guide: string;
  /** What `ref` means for this kind, in one line. */
  readonly ref: string;
}

/**
 * The whole static contract of a store kind. The provider config schema, `usp schema`, the
 * reference docs and `usp validate` are derived from these; none of them needs a live store.
 */
export interface BackendDefinition<Options = any, Spec = any> {
  readonly kind: string;
  /**
   * Backend-specific store options, merged with the common store fields into one strict object
   * per kind. Plain fields only: cross-field rules belong in `checkStore`.
   */
  readonly options: z.ZodType<Options> & { readonly shape: z.ZodRawShape };
  /** Backend-specific object fields of a class (strict: unknown fields are errors). */
  readonly objectFields: z.ZodType<Spec>;
  /** The pod-token audiences a store with these options presents; empty when it acts as itself. */
  audiences(options: Options): readonly string[];
  readonly docs: BackendDocs;
  /** Rules that need several fields or the common ones; returns problems as `field: message`. */
  checkStore?(settings: StoreSettings<Options>): string[];
  /**
   * What `create` would refuse that an admin wants to hear at start: files the options name (TLS
   * material, a kubeconfig) that cannot be read or lack what they must hold. It runs at start and
   * on each reload, loads no SDK and opens no connection; it throws a ProviderError naming the
   * field. Kinds that read no files leave it out.
   */
  preflight?(settings: StoreSettings<Options>, deps: BackendDeps): Promise<void>;
  /**
   * The network client (and its SDK), built on the first Mount that uses the store, once however
   * many Mounts arrive together; a failure fails those Mounts and is tried again later.
   */
  create(settings: StoreSettings<Options>, deps: BackendDeps): StoreBackend<Spec> | Promise<StoreBackend<Spec>>;
}
