import type * as Sm from '@aws-sdk/client-secrets-manager';
import type { Logger } from 'pino';
import { z } from 'zod';
import { raceSignal } from '../abort.js';
import { ProviderError } from '../errors.js';
import {
  AwsAccess,
  describeAwsError,
  inRegion,
  isTransient,
  itemError,
  BatchingAwsStore,
  defineAwsBackend,
  type AwsBackendOptions,
  awsCancelled,
  type AwsCaller,
  type AwsStoreOptions,
  type PendingRead,
} from './aws-auth.js';
import { bytesContent } from './content.js';
import type { BackendDefinition, FetchContext, FetchRequest, FetchResult } from './types.js';

export const secretsManagerObjectFields = z.strictObject({
  versionStage: z
    .string()
    .min(1)
    .max(256)
    .optional()
    .describe('Staging label to read (`AWSCURRENT` when neither it nor `version` is set).'),
});

export type SecretsManagerObjectSpec = z.infer<typeof secretsManagerObjectFields>;

/** Creates the `aws-secrets-manager` definition; `awsSecretsManagerBackend` is the one with the real clock. */
export function createAwsSecretsManagerDefinition(options: AwsBackendOptions = {}): BackendDefinition<AwsStoreOptions> {
  return defineAwsBackend(
    'aws-secrets-manager',
    () => import('@aws-sdk/client-secrets-manager'),
    (name, sdk, aws, logger) => new SecretsManagerStore(name, sdk, aws, logger),
    options,
  );
}

export const awsSecretsManagerBackend = createAwsSecretsManagerDefinition();

const service = 'AWS Secrets Manager';
const currentStage = 'AWSCURRENT';
/** BatchGetSecretValue takes at most 20 ids per call. */
const batchLimit = 20;
const maxRefLength = 2048;

interface SecretRead {
  readonly secretId: string;
  readonly versionId?: string;
  readonly versionStage?: string;
  readonly signal: AbortSignal;
}

type Pending = PendingRead<SecretRead, FetchResult>;

class SecretsManagerStore extends BatchingAwsStore<SecretsManagerObjectSpec, SecretRead> {
  constructor(name: string, private readonly sm: typeof Sm, aws: AwsAccess, logger: Logger) {
    super(name, aws, logger, secretsManagerObjectFields);
  }

  async fetch({ ref, version, spec }: FetchRequest<SecretsManagerObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    if (ref.length > maxRefLength) throw new ProviderError('InvalidArgument', `ref must be a secret name or ARN of at most ${maxRefLength} characters`);
    const caller = this.aws.callerFor(ctx);
    const read: SecretRead = {
      secretId: ref,
      ...(version !== undefined ? { versionId: version } : {}),
      ...(spec.versionStage !== undefined ? { versionStage: spec.versionStage } : {}),
      signal: ctx.signal,
    };
    return raceSignal(this.batcher.add(caller, read), ctx.signal, awsCancelled);
  }

  /** AWSCURRENT reads of two or more secrets go in BatchGetSecretValue; pinned reads one by one. */
  protected async flush(caller: AwsCaller, pending: readonly Pending[]): Promise<void> {
    const current = pending.filter((p) => isCurrentRead(p.item));
    const ids = new Set(current.map((p) => p.item.secretId));
    const singles = ids.size >= 2 ? pending.filter((p) => !isCurrentRead(p.item)) : pending;
    const batches = ids.size >= 2 ? chunkById(current, batchLimit) : [];
    await Promise.all([...singles.map((p) => this.#readOne(caller, p)), ...batches.map((b) => this.#readBatch(caller, b))]);
  }

  async #readOne(caller: AwsCaller, p: Pending): Promise<void> {
    const { secretId, versionId, versionStage } = p.item;
    try {
      const out = await this.aws.run(caller, (target, credentials, fingerprint) => {
        const client = this.aws.clientFor('secretsmanager', target, caller.key, credentials, fingerprint, (c) => new this.sm.SecretsManagerClient(c));
        const input = {
          SecretId: inRegion(secretId, target.region),
          ...(versionId !== undefined ? { VersionId: versionId } : {}),
          ...(versionStage !== undefined ? { VersionStage: versionStage } : {}),
        };
        return this.aws.send([p.item.signal], (abortSignal) => client.send(new this.sm.GetSecretValueCommand(input), { abortSignal }));
      });
      p.resolve(toResult(out, secretId));
    } catch (err) {
      p.reject(describeAwsError(err, this.#where(caller, describeRead(p.item))));
    }
  }

  async #readBatch(caller: AwsCaller, pending: readonly Pending[]): Promise<void> {
    const ids = [...new Set(pending.map((p) => p.item.secretId))];
    let out: Sm.BatchGetSecretValueCommandOutput;
    let region = this.aws.primary.region;
    try {
      out = await this.aws.run(caller, (target, credentials, fingerprint) => {
        region = target.region;
        const client = this.aws.clientFor('secretsmanager', target, caller.key, credentials, fingerprint, (c) => new this.sm.SecretsManagerClient(c));
        const input = { SecretIdList: ids.map((id) => inRegion(id, target.region)) };
        const signals = pending.map((p) => p.item.signal);
        return this.aws.send(signals, (abortSignal) => client.send(new this.sm.BatchGetSecretValueCommand(input), { abortSignal }));
      });
    } catch (err) {
      if (isTransient(err)) {
        const error = describeAwsError(err, this.#where(caller, `reading ${ids.length} secrets`));
        for (const p of pending) p.reject(error);
        return;
      }
      // Roles often may GetSecretValue but not BatchGetSecretValue; single reads give each object its own cause.
      this.logger.debug({ cause: (err as Error).name }, 'BatchGetSecretValue refused; reading the secrets one by one');
      await Promise.all(pending.map((p) => this.#readOne(caller, p)));
      return;
    }
    const leftOver: Pending[] = [];
    for (const p of pending) {
      const wanted = [p.item.secretId, inRegion(p.item.secretId, region)];
      const value = out.SecretValues?.find((v) => wanted.includes(v.ARN ?? '') || wanted.includes(v.Name ?? ''));
      const failed = out.Errors?.find((e) => wanted.includes(e.SecretId ?? ''));
      if (value) p.resolve(toResult(value, p.item.secretId));
      else if (failed) p.reject(describeAwsError(itemError(failed.ErrorCode ?? 'Error', failed.Message), this.#where(caller, describeRead(p.item), region)));
      else leftOver.push(p);
    }
    // Partial ARNs and ids the answer did not name: the single call resolves them exactly.
    await Promise.all(leftOver.map((p) => this.#readOne(caller, p)));
  }

  #where(caller: AwsCaller, doing: string, region = this.aws.primary.region) {
    return { service, doing, region, caller: caller.describe, scrub: caller.scrub };
  }
}

function isCurrentRead(read: SecretRead): boolean {
  return read.versionId === undefined && (read.versionStage === undefined || read.versionStage === currentStage);
}

function describeRead(read: SecretRead): string {
  const pins = [
    ...(read.versionId !== undefined ? [`version ${read.versionId}`] : []),
    ...(read.versionStage !== undefined ? [`stage ${read.versionStage}`] : []),
  ];
  return `reading secret "${read.secretId}"${pins.length > 0 ? ` (${pins.join(', ')})` : ''}`;
}

/** Groups reads into batches of at most `limit` distinct ids; reads of one id stay together. */
function chunkById(pending: readonly Pending[], limit: number): Pending[][] {
  const byId = new Map<string, Pending[]>();
  for (const p of pending) byId.set(p.item.secretId, [...(byId.get(p.item.secretId) ?? []), p]);
  const chunks: Pending[][] = [];
  let chunk: Pending[] = [];
  let count = 0;
  for (const group of byId.values()) {
    if (count === limit) {
      chunks.push(chunk);
      chunk = [];
      count = 0;
    }
    chunk.push(...group);
    count += 1;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

interface SecretValue {
  SecretString?: string;
  SecretBinary?: Uint8Array;
  VersionId?: string;
}

function toResult(value: SecretValue, secretId: string): FetchResult {
  const version = value.VersionId ? { version: value.VersionId } : {};
  // The SDK does not check types; a non-string here is a malformed answer, not the class's fault.
  if (value.SecretString !== undefined && typeof value.SecretString !== 'string') {
    throw new ProviderError('Unavailable', `AWS Secrets Manager sent a malformed answer for secret "${secretId}" (SecretString is not a string)`);
  }
  if (value.SecretString !== undefined) return { content: bytesContent(value.SecretString), ...version };
  if (value.SecretBinary !== undefined) return { content: bytesContent(Buffer.from(value.SecretBinary)), ...version };
  throw new ProviderError('NotFound', `secret "${secretId}" has neither SecretString nor SecretBinary`);
}
