import type { Logger } from 'pino';
import { raceSignal } from '../../abort.js';
import type { BackendDeps, FetchContext, FetchRequest, FetchResult, StoreBackend, StoreSettings } from '../types.js';
import { MicroBatcher, type PendingRead } from './batch.js';
import { AwsAccess, type AwsTarget } from './client.js';
import { createCallers, type AwsCaller, type AwsCredentials, type Callers } from './credentials.js';
import { awsCancelled, describeAwsError, errorName, failsWholeBatch, loadErrorClassification, malformedAnswer, type ErrorContext } from './errors.js';
import type { AwsStoreOptions } from './options.js';
import { loadCredentialSources } from './sources.js';

/** What a store of either AWS kind is made of. */
export interface AwsParts {
  readonly name: string;
  readonly aws: AwsAccess;
  readonly callers: Callers;
  readonly logger: Logger;
}

/**
 * The backend definition of an AWS store kind: the shared store options, and a `create` that
 * loads the service's SDK (and the credential provider its auth method uses) only when such a
 * store exists.
 */
/** Builds a store of an AWS kind: its SDK, and STS or the Pod Identity provider only when its auth uses them. */
export async function createAwsStore<Sdk, Spec>(
  kind: string,
  { name, options }: StoreSettings<AwsStoreOptions>,
  { logger, now }: BackendDeps,
  loadSdk: () => Promise<Sdk>,
  makeStore: (sdk: Sdk, parts: AwsParts) => StoreBackend<Spec>,
): Promise<StoreBackend<Spec>> {
  // The logger is already bound to the store's name.
  const log = logger.child({ backend: kind });
  const aws = new AwsAccess(options, log);
  const [sdk, sources] = await Promise.all([
    loadSdk(),
    loadCredentialSources(options, { logger: log, client: aws.shared, sdkLogger: aws.sdkLogger }),
    loadErrorClassification(),
  ]);
  return makeStore(sdk, { name, aws, callers: createCallers(options, sources, now), logger: log });
}

/**
 * What both AWS stores share: per-identity access to AWS, a batcher that groups the reads of one
 * identity arriving in the same tick, and the store contract around them. A subclass reads.
 */
export abstract class BatchingAwsStore<Spec, Read> implements StoreBackend<Spec> {
  readonly name: string;
  protected readonly aws: AwsAccess;
  protected readonly callers: Callers;
  protected readonly logger: Logger;
  protected readonly batcher: MicroBatcher<Read, FetchResult>;

  constructor(
    parts: AwsParts,
    /** The service's name in messages. */
    protected readonly service: string,
  ) {
    ({ name: this.name, aws: this.aws, callers: this.callers, logger: this.logger } = parts);
    this.batcher = new MicroBatcher((caller, pending) => this.flush(caller, pending));
  }

  /** Where a call failed, for describeAwsError. */
  protected where(caller: AwsCaller, doing: string, region = this.aws.primary.region): ErrorContext {
    return { service: this.service, doing, region, caller: caller.describe, scrub: caller.scrub };
  }

  /**
   * One batch call through `aws.run`, with the region that answered. A failure that concerns every
   * read (an outage, a malformed answer, the deadline) fails them all with one cause; a refusal (a
   * role that may read some of the objects only) reads them `oneByOne` instead, so each object
   * gets its own cause. Undefined when the reads were settled here.
   */
  protected async runBatch<T>(
    caller: AwsCaller,
    reads: ReadonlyArray<PendingRead<Read, FetchResult>>,
    batch: {
      /** `reading 3 secrets` */
      readonly doing: string;
      call(target: AwsTarget, credentials: AwsCredentials, fingerprint: string): Promise<T>;
      /** What makes the answer unusable as a whole: then it fails over like a 5xx. */
      problemOf(answer: T): string | undefined;
      oneByOne(): Promise<unknown>;
    },
  ): Promise<{ answer: T; region: string } | undefined> {
    try {
      return await this.aws.run(caller, async (target, credentials, fingerprint) => {
        const answer = await batch.call(target, credentials, fingerprint);
        const problem = batch.problemOf(answer);
        if (problem) throw malformedAnswer(this.service, `${batch.doing} in ${target.region}`, problem);
        return { answer, region: target.region };
      });
    } catch (err) {
      if (failsWholeBatch(err)) {
        const error = describeAwsError(err, this.where(caller, batch.doing));
        for (const p of reads) p.reject(error);
      } else {
        this.logger.debug({ cause: errorName(err) }, 'the batch call was refused; reading the objects one by one');
        await batch.oneByOne();
      }
      return undefined;
    }
  }

  /**
   * One page of a listing through `aws.run` (failover included), its shape checked in the region
   * that answered, so a malformed page fails over like a 5xx.
   */
  protected listPage<T>(
    caller: AwsCaller,
    page: {
      /** `listing the secrets under "shop/"` */
      readonly doing: string;
      readonly signal: AbortSignal;
      send(target: AwsTarget, credentials: AwsCredentials, fingerprint: string, abortSignal: AbortSignal): Promise<T>;
      problemOf(answer: T): string | undefined;
    },
  ): Promise<T> {
    const run = this.aws.run(caller, async (target, credentials, fingerprint) => {
      const answer = await this.aws.send([page.signal], (abortSignal) => page.send(target, credentials, fingerprint, abortSignal));
      const problem = page.problemOf(answer);
      if (problem) throw malformedAnswer(this.service, page.doing, problem);
      return answer;
    });
    return raceSignal(run, page.signal, awsCancelled).catch((err: unknown) => {
      throw describeAwsError(err, this.where(caller, page.doing));
    });
  }

  abstract fetch(request: FetchRequest<Spec>, ctx: FetchContext): Promise<FetchResult>;

  async close(): Promise<void> {
    this.aws.close();
    this.callers.clear();
  }

  /** Reads one identity's batch of the tick; settles every pending read. */
  protected abstract flush(caller: AwsCaller, pending: ReadonlyArray<PendingRead<Read, FetchResult>>): Promise<void>;
}

/** How the reference docs present an AWS kind. */
/** Rewrites the region of an ARN (replicated secrets keep their ARN but for the region); names pass as they are. */
export function inRegion(ref: string, region: string): string {
  return ref.replace(/^(arn:aws[a-z-]*:[a-z]+:)[a-z0-9-]+(:)/, `$1${region}$2`);
}
