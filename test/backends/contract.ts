/**
 * The contract every backend keeps, run against its protocol-faithful test server (in the shape of
 * unstorage's `testDriver`). A backend's contract file is a few lines:
 *
 *   runBackendContract('vault', async () => ({ definition: vaultBackend, create, pod, objects, faults, teardown }));
 *
 * Cases a kind cannot have (no network, no versions, no pod token) are declared with a reason
 * (`{ skip: 'no versions' }`) and show up as skipped with that reason, never as an empty test.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendDefinition, Content, FetchContext, FetchResult, ListedSecret, StoreBackend } from '../../src/backends/types.js';
import { ProviderError, type ErrorCode } from '../../src/errors.js';
import { createTokenSource, type Identity, type PodToken } from '../../src/identity.js';
import { parseOrThrow } from '../../src/schema.js';
import { Secret } from '../../src/secret.js';
import { malformedBodyMarker, type FaultInjector } from '../servers/faults.js';

export interface Skipped {
  readonly skip: string;
}

export interface ContractObject {
  readonly ref: string;
  /** Backend-specific object fields as a class would write them; parsed by the definition. */
  readonly fields?: Record<string, unknown>;
  readonly version?: string;
}

export interface ExpectedObject extends ContractObject {
  /** What the store must return, exactly (Buffers compare byte for byte). */
  readonly content: Content;
}

export interface PinnedObject extends ExpectedObject {
  readonly version: string;
}

/** A `find` selection as a class writes it (prefix, recursive, labels, the kind's object fields). */
export interface ListingSelection {
  readonly prefix: string;
  readonly recursive?: boolean;
  readonly labels?: Record<string, string>;
  readonly fields?: Record<string, unknown>;
}

/** What a kind's listing must do; several pages where the kind pages. */
export interface ListingCase {
  /** A selection and the refs it must find across all its pages, exactly (order aside). */
  readonly found: ListingSelection & { readonly refs: readonly string[] };
  /** Whether the list call itself returns values (then each equals what fetch returns). */
  readonly withValues: boolean;
  /** A selection with nothing under it: an empty listing, not NotFound. */
  readonly empty: ListingSelection;
  /** A selection the pod may not list (the store's own list authorisation). */
  readonly denied: ListingSelection | Skipped;
}

export interface ContractSetup {
  readonly definition: BackendDefinition;
  /** A new live store on the test server; `timeoutMs` sets its per-call timeout. */
  create(overrides?: { timeoutMs?: number }): Promise<StoreBackend>;
  readonly pod: {
    readonly identity: Identity;
    readonly parameters?: { readonly role?: string };
    /** The pod-token audience the store presents, and a fresh valid token for it; absent when it acts as itself. */
    readonly token?: { readonly audience: string; issue(): string };
  };
  readonly objects: {
    readonly value: ExpectedObject;
    readonly binary: ExpectedObject | Skipped;
    readonly pinned: PinnedObject | Skipped;
    readonly missing: ContractObject;
    readonly denied: ContractObject | Skipped;
  };
  /**
   * The server's injector of the shared fault vocabulary, and which requests the faults apply to
   * (the reads, not the login), or why a kind has no network.
   */
  readonly faults: { readonly injector: FaultInjector; readonly match?: string | RegExp } | Skipped;
  /** The listing cases (`find` objects); a kind without a listing says why. */
  readonly listing?: ListingCase | Skipped;
  /** Client connections the server holds open, to check that close() lets go of them. */
  readonly connections?: () => Promise<number>;
  teardown(): Promise<void>;
}

const isSkipped = (value: object): value is Skipped => 'skip' in value;

/** Registers the contract's tests for one backend kind. */
export function runBackendContract(kind: string, setup: () => Promise<ContractSetup>): void {
  describe(`backend contract: ${kind}`, () => {
    let env: ContractSetup;
    let store: StoreBackend;
    const seen: string[] = [];

    beforeAll(async () => {
      env = await setup();
      store = await env.create();
    });
    afterAll(async () => {
      await store?.close();
      await env?.teardown();
    });

    const context = (options: { signal?: AbortSignal; tokens?: 'valid' | 'none' | 'expired' } = {}): FetchContext => {
      const tokens = new Map<string, PodToken>();
      const token = env.pod.token;
      if (token && options.tokens !== 'none') {
        const value = token.issue();
        seen.push(value);
        tokens.set(token.audience, { token: new Secret(value), ...(options.tokens === 'expired' ? { expiresAt: Date.now() - 60_000 } : {}) });
      }
      const source = createTokenSource(tokens, Date.now);
      return {
        tokenFor: (audience) => source.tokenFor(audience),
        identity: env.pod.identity,
        parameters: env.pod.parameters ?? {},
        secrets: new Map(),
        signal: options.signal ?? new AbortController().signal,
      };
    };
    const request = (object: ContractObject) => ({
      ref: object.ref,
      ...(object.version !== undefined ? { version: object.version } : {}),
      spec: parseOrThrow(env.definition.objectFields, object.fields ?? {}, 'objects[0]'),
    });
    const fetchFrom = (target: StoreBackend, object: ContractObject, ctx = context()) => target.fetch(request(object), ctx);
    /** The failure of a fetch, checked for the code and for secret material in its message. */
    const failure = async (promise: Promise<FetchResult>, code: ErrorCode): Promise<ProviderError> => {
      const error = await promise.then(
        () => {
          throw new Error(`expected ${code}, the fetch succeeded`);
        },
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(ProviderError);
      const providerError = error as ProviderError;
      expect(providerError.code, providerError.message).toBe(code);
      for (const secret of [...seen, valueText(env.objects.value.content)]) expect(providerError.message).not.toContain(secret);
      return providerError;
    };
    const caseName = (name: string, declared: object) => (isSkipped(declared) ? `${name} (not applicable: ${declared.skip})` : name);

    it('returns a value exactly, with a version that does not reveal it', async () => {
      const result = await fetchFrom(store, env.objects.value);
      expect(result.content.reveal()).toEqual(env.objects.value.content);
      if (result.version !== undefined) expect(result.version).not.toContain(valueText(env.objects.value.content));
    });

    it('returns a binary value byte for byte', async (t) => {
      const binary = env.objects.binary;
      if (isSkipped(binary)) return t.skip(binary.skip);
      const result = await fetchFrom(store, binary);
      expect(result.content.reveal()).toEqual(binary.content);
    });

    it('returns a pinned version, and names that version', async (t) => {
      const pinned = env.objects.pinned;
      if (isSkipped(pinned)) return t.skip(pinned.skip);
      const result = await fetchFrom(store, pinned);
      expect(result.content.reveal()).toEqual(pinned.content);
      expect(result.version).toBe(pinned.version);
      expect(result.content.reveal()).not.toEqual(env.objects.value.content);
    });

    it('fails a missing object with NotFound', async () => {
      await failure(fetchFrom(store, env.objects.missing), 'NotFound');
    });

    it('fails an object the pod may not read with PermissionDenied', async (t) => {
      const denied = env.objects.denied;
      if (isSkipped(denied)) return t.skip(denied.skip);
      await failure(fetchFrom(store, denied), 'PermissionDenied');
    });

    it('refuses a Mount without a token for its audience, naming the audience', async (t) => {
      const token = env.pod.token;
      if (!token) return t.skip('the store acts as itself, not with a pod token');
      const error = await failure(fetchFrom(store, env.objects.value, context({ tokens: 'none' })), 'PermissionDenied');
      expect(error.message).toContain(JSON.stringify(token.audience));
    });

    it('refuses an expired pod token', async (t) => {
      if (!env.pod.token) return t.skip('the store acts as itself, not with a pod token');
      const error = await failure(fetchFrom(store, env.objects.value, context({ tokens: 'expired' })), 'PermissionDenied');
      expect(error.message).toContain('expired');
    });

    describe('against a failing server', () => {
      const faults = () => {
        const declared = env.faults;
        return isSkipped(declared) ? undefined : declared;
      };
      const arm = (fault: Parameters<FaultInjector['inject']>[0]) => {
        const f = faults()!;
        f.injector.clear();
        f.injector.inject(fault, { times: Infinity, ...(f.match !== undefined ? { match: f.match } : {}) });
        return f.injector;
      };
      const disarm = () => {
        const f = faults();
        f?.injector.clear();
        f?.injector.releaseHanging();
      };

      it('stops at once when the Mount is cancelled mid-call', async (t) => {
        if (!faults()) return t.skip((env.faults as Skipped).skip);
        try {
          const injector = arm({ kind: 'hang' });
          const hangsBefore = injector.applied.hang;
          const controller = new AbortController();
          const pending = fetchFrom(store, env.objects.value, context({ signal: controller.signal }));
          pending.catch(() => {});
          for (let i = 0; i < 500 && injector.applied.hang === hangsBefore; i += 1) await sleep(10);
          expect(injector.applied.hang, 'the read reached the server and hangs there').toBeGreaterThan(hangsBefore);
          const abortedAt = performance.now();
          controller.abort();
          await failure(pending, 'DeadlineExceeded');
          // The store's own timeout is 30 s here: ending within seconds means the abort did it.
          expect(performance.now() - abortedAt).toBeLessThan(5_000);
        } finally {
          disarm();
        }
      });

      it('gives up after its per-call timeout, as a transient failure, in one attempt', async (t) => {
        if (!faults()) return t.skip((env.faults as Skipped).skip);
        const quick = await env.create({ timeoutMs: 300 });
        try {
          const injector = arm({ kind: 'hang' });
          const hangsBefore = injector.applied.hang;
          const error = await failure(fetchFrom(quick, env.objects.value), 'DeadlineExceeded');
          expect(error.transient, 'the store guard may try again').toBe(true);
          expect(injector.applied.hang - hangsBefore, 'retries belong to the store guard, not the backend').toBe(1);
        } finally {
          disarm();
          await quick.close();
        }
      });

      it('refuses an oversized answer without buffering it, and does not ask for a retry', async (t) => {
        if (!faults()) return t.skip((env.faults as Skipped).skip);
        try {
          arm({ kind: 'oversized', bytes: 32 * 1024 * 1024 });
          const error = await failure(fetchFrom(store, env.objects.value), 'Unavailable');
          expect(error.transient).toBe(false);
          expect(error.message).not.toContain('AAAAAAAA');
        } finally {
          disarm();
        }
      });

      it('reports a malformed answer as a transient outage without quoting it', async (t) => {
        if (!faults()) return t.skip((env.faults as Skipped).skip);
        try {
          arm({ kind: 'malformed' });
          const error = await failure(fetchFrom(store, env.objects.value), 'Unavailable');
          expect(error.transient).toBe(true);
          expect(error.message).not.toContain(malformedBodyMarker);
        } finally {
          disarm();
        }
      });
    });

    describe('listing', () => {
      const declared = (): ListingCase | Skipped => env.listing ?? { skip: 'this kind declares no listing case' };
      const listAll = async (selection: ListingSelection, ctx = context()): Promise<ListedSecret[]> => {
        if (!store.list) throw new Error('the store has no list(), yet the kind declares listing cases');
        const items: ListedSecret[] = [];
        let page: string | undefined;
        for (let pages = 0; pages === 0 || page !== undefined; pages += 1) {
          expect(pages, 'the listing ends').toBeLessThan(100);
          const spec = parseOrThrow(env.definition.objectFields, selection.fields ?? {}, 'objects[0]');
          const answer = await store.list({ prefix: selection.prefix, recursive: selection.recursive ?? false, labels: selection.labels ?? {}, page, spec }, ctx);
          items.push(...answer.items);
          page = answer.next;
        }
        return items;
      };

      it('finds exactly the refs under a prefix, across its pages, with values where the list call returns them', async (t) => {
        const listing = declared();
        if (isSkipped(listing)) return t.skip(listing.skip);
        const items = await listAll(listing.found);
        expect(items.map((i) => i.ref).sort()).toEqual([...listing.found.refs].sort());
        const spec = listing.found.fields ?? {};
        for (const item of items) {
          expect(item.value !== undefined, `${item.ref}: value with the listing`).toBe(listing.withValues);
          if (!item.value) continue;
          const read = await fetchFrom(store, { ref: item.ref, fields: spec });
          expect(item.value.content.reveal()).toEqual(read.content.reveal());
          expect(item.value.version).toEqual(read.version);
        }
      });

      it('finds nothing under an empty prefix, without an error', async (t) => {
        const listing = declared();
        if (isSkipped(listing)) return t.skip(listing.skip);
        expect(await listAll(listing.empty)).toEqual([]);
      });

      it('fails a listing the pod may not make with PermissionDenied', async (t) => {
        const listing = declared();
        if (isSkipped(listing)) return t.skip(listing.skip);
        if (isSkipped(listing.denied)) return t.skip(listing.denied.skip);
        const error = await listAll(listing.denied).then(
          () => {
            throw new Error('expected PermissionDenied, the listing succeeded');
          },
          (err: unknown) => err,
        );
        expect(error).toBeInstanceOf(ProviderError);
        expect((error as ProviderError).code, (error as ProviderError).message).toBe('PermissionDenied');
        for (const secret of seen) expect((error as ProviderError).message).not.toContain(secret);
      });
    });

    it('close() lets go of its connections, and may be called twice', async () => {
      const closing = await env.create();
      await fetchFrom(closing, env.objects.value);
      const before = env.connections ? await env.connections() : 0;
      await closing.close();
      await closing.close();
      if (env.connections) {
        let after = await env.connections();
        for (let i = 0; i < 100 && after >= before && before > 0; i += 1) {
          await sleep(20);
          after = await env.connections();
        }
        expect(before === 0 || after < before, `connections before close ${before}, after ${after}`).toBe(true);
      }
    });
  });
}

/** The value's text, for checks that it never shows in a message or a version. */
function valueText(content: Content): string {
  if (content.kind === 'bytes') return content.data.toString('utf8');
  const first = Object.values(content.fields).find((v) => typeof v === 'string' || Buffer.isBuffer(v));
  return first === undefined ? '\u0000never' : Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
}
