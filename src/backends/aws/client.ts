import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { pipeline, Readable, Transform } from 'node:stream';
import type { Logger } from 'pino';
import { withDeadline } from '../../abort.js';
import { BoundedMap } from '../kit/bounded-map.js';
import { fingerprintOf, type AwsCaller, type AwsCredentials, type CredentialEntry } from './credentials.js';
import { answerTooLarge, errorName, isStaleCredentialError, maxAnswerBytes, shouldFailOver } from './errors.js';
import type { AwsStoreOptions } from './options.js';

export interface AwsTarget {
  readonly region: string;
  readonly endpoint?: string;
}

/** What the SDK clients of a store share: region, endpoint, credentials and the HTTP pool. */
export interface AwsClientConfig {
  region: string;
  endpoint?: string;
  credentials: AwsCredentials;
  /** Always 1: the store guard owns retries (see StoreBackend in ../types.ts). */
  maxAttempts: number;
  requestHandler: Record<string, unknown>;
}

type Operation<T> = (target: AwsTarget, credentials: AwsCredentials, fingerprint: string) => Promise<T>;

/** SDK clients are heavier than credentials; identities beyond this rebuild theirs when next used. */
const maxClients = 1_000;

/**
 * SDK clients and failover of one AWS store. The SDK has no failover between regions and reads
 * any answer whole, so both stay here: one attempt is the primary region, then the failover
 * region when the primary failed transiently; answers are capped before the SDK parses them.
 */
export class AwsAccess {
  readonly #clients = new BoundedMap<string, { fingerprint: string; client: unknown }>(maxClients);
  readonly #httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  readonly #httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });
  readonly primary: AwsTarget;
  readonly failover: AwsTarget | undefined;
  /** Settings every SDK client of the store (STS included) starts from. */
  readonly shared: Omit<AwsClientConfig, 'region' | 'credentials' | 'endpoint'>;
  /** Only for warnings: the SDK's client logger would log every call (and failures as objects). */
  readonly sdkLogger: SdkLogger;

  constructor(
    readonly opts: AwsStoreOptions,
    private readonly logger: Logger,
  ) {
    this.primary = { region: opts.region, ...(opts.endpoint ? { endpoint: opts.endpoint } : {}) };
    this.failover = opts.failoverRegion
      ? { region: opts.failoverRegion, ...(opts.failoverEndpoint ? { endpoint: opts.failoverEndpoint } : {}) }
      : undefined;
    this.sdkLogger = sdkLogger(logger);
    // Clients share the store's agents: replacing a client on new credentials keeps the pooled sockets.
    this.shared = {
      maxAttempts: 1,
      requestHandler: {
        requestTimeout: opts.timeout,
        connectionTimeout: Math.min(opts.timeout, 5_000),
        throwOnRequestTimeout: true,
        httpAgent: this.#httpAgent,
        httpsAgent: this.#httpsAgent,
        logger: this.sdkLogger,
      },
    };
  }

  /**
   * Runs `op` in the primary region and, when that fails transiently, in the failover region. If
   * both fail, the primary's error is the one thrown. A cached credential the service no longer
   * accepts is dropped and fetched again once.
   */
  async run<T>(caller: AwsCaller, op: Operation<T>): Promise<T> {
    const held = await caller.obtain();
    try {
      return await this.#acrossRegions(held.entry, op);
    } catch (err) {
      if (!held.cached || !isStaleCredentialError(err)) throw err;
      caller.evict(held.entry);
      const again = await caller.obtain();
      return this.#acrossRegions(again.entry, op);
    }
  }

  async #acrossRegions<T>(entry: CredentialEntry, op: Operation<T>): Promise<T> {
    const credentials = entry.credentials.reveal();
    const fingerprint = fingerprintOf(credentials);
    try {
      return await op(this.primary, credentials, fingerprint);
    } catch (err) {
      if (!this.failover || !shouldFailOver(err)) throw err;
      this.logger.warn(
        { region: this.primary.region, failoverRegion: this.failover.region, cause: errorName(err) },
        'the primary region failed; reading from the failover region',
      );
      try {
        return await op(this.failover, credentials, fingerprint);
      } catch (failoverErr) {
        this.logger.warn({ failoverRegion: this.failover.region, cause: errorName(failoverErr) }, 'the failover region failed too');
        throw err;
      }
    }
  }

  /** One SDK client per (service, region, identity), replaced when the identity's credentials change. */
  clientFor<C>(service: string, target: AwsTarget, callerKey: string, credentials: AwsCredentials, fingerprint: string, make: (config: AwsClientConfig) => C): C {
    const key = `${service}\u0000${target.region}\u0000${target.endpoint ?? ''}\u0000${callerKey}`;
    const held = this.#clients.get(key);
    if (held && held.fingerprint === fingerprint) return held.client as C;
    const client = make({ ...this.shared, region: target.region, ...(target.endpoint ? { endpoint: target.endpoint } : {}), credentials });
    (client as { middlewareStack?: { use(plugin: typeof answerCapPlugin): void } }).middlewareStack?.use(answerCapPlugin);
    this.#clients.delete(key);
    this.#clients.set(key, { fingerprint, client });
    return client;
  }

  /**
   * Makes one SDK call bounded by the store's timeout and, when every waiting Mount shares one
   * signal, by that signal. A call that ran out of its own time fails as a TimeoutError (transient,
   * may fail over); one the Mount gave up on stays an AbortError, which must not.
   */
  async send<T>(signals: readonly AbortSignal[], call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    const first = signals[0];
    const shared = first !== undefined && signals.every((s) => s === first);
    const deadline = withDeadline(shared ? first : undefined, this.opts.timeout);
    try {
      return await call(deadline.signal);
    } catch (err) {
      if ((err as { name?: string } | null)?.name === 'AbortError' && !signals.some((s) => s.aborted)) {
        throw Object.assign(new Error(`no answer within ${this.opts.timeout}ms`), { name: 'TimeoutError', code: 'ETIMEDOUT' });
      }
      throw err;
    } finally {
      deadline.clear();
    }
  }

  close(): void {
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
    this.#clients.clear();
  }
}

type Next = (args: unknown) => Promise<{ response: unknown }>;
interface Stack {
  add(middleware: (next: Next) => Next, options: object): void;
}

/**
 * The SDK reads a whole answer into memory however large it is; this caps the body stream before
 * its deserializer reads it (a 64 MiB answer was buffered whole: found by fault injection).
 */
export const answerCapPlugin = {
  applyToStack(stack: Stack): void {
    stack.add(
      (next) => async (args) => {
        const out = await next(args);
        const response = out.response as { body?: unknown } | undefined;
        if (response && response.body instanceof Readable) response.body = capStream(response.body);
        return out;
      },
      { step: 'deserialize', priority: 'low', name: 'uspAnswerSizeCap' },
    );
  },
};

function capStream(source: Readable): Readable {
  let size = 0;
  const capped = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > maxAnswerBytes) done(Object.assign(new Error(`answer exceeded ${maxAnswerBytes} bytes`), { name: answerTooLarge }));
      else done(null, chunk);
    },
  });
  // pipeline destroys the source (and its socket) when the cap fails the transform.
  pipeline(source, capped, () => {});
  return capped;
}

export type SdkLogger = ReturnType<typeof sdkLogger>;

/** The SDK's HTTP handler warns through this; its messages carry no request data. */
function sdkLogger(logger: Logger) {
  const warn = (...args: unknown[]) => logger.warn({ sdk: String(args[0]).slice(0, 300) }, 'AWS SDK warning');
  return { trace: () => {}, debug: () => {}, info: () => {}, warn, error: warn };
}
