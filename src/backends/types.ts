import type { z } from 'zod';
import type { Logger } from 'pino';
import type { Secret } from '../secret.js';
import type { Identity, TokenSource } from '../mount/identity.js';

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
  /** Backend-specific object fields, as returned by `parseSpec`. */
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

/** One configured store: an instance of a backend. */
export interface StoreBackend<Spec = unknown> {
  /** The store's name from the provider config. */
  readonly name: string;
  /**
   * The audience of the pod token this store logs in with, when it acts as the pod. Cached values
   * are served only to Mounts that carry a valid token for it, as a store call would require.
   */
  readonly audience?: string;
  /**
   * Validates the backend-specific fields of one object (everything but the common fields).
   * Throws a ProviderError (InvalidArgument) whose message names `${at}.<field>`.
   */
  parseSpec(fields: Readonly<Record<string, unknown>>, at: string): Spec;
  fetch(request: FetchRequest<Spec>, ctx: FetchContext): Promise<FetchResult>;
  close(): Promise<void>;
}

export interface BackendDeps {
  readonly logger: Logger;
  /** Directory of the provider config file; relative paths in store options resolve against it. */
  readonly baseDir: string;
}

export interface StoreSettings<Options> {
  readonly name: string;
  readonly options: Options;
  /** Whether the store's access rules restrict namespaces (some identities require it). */
  readonly restrictsNamespaces: boolean;
}

/** A backend kind: its store options schema and how to create a store from them. */
export interface BackendDefinition<Options = any> {
  readonly kind: string;
  /** Backend-specific store options (strict: unknown keys are errors). */
  readonly options: z.ZodType<Options>;
  /** Extra store-level checks that need the common fields; returns problems as `field: message`. */
  checkStore?(settings: StoreSettings<Options>): string[];
  create(settings: StoreSettings<Options>, deps: BackendDeps): StoreBackend | Promise<StoreBackend>;
}
