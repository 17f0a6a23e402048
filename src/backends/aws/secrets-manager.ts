import type * as Sm from '@aws-sdk/client-secrets-manager';
import { raceSignal } from '../../abort.js';
import { ProviderError } from '../../errors.js';
import { describeAwsError, itemError, malformedAnswer, awsCancelled } from './errors.js';
import type { AwsCaller } from './credentials.js';
import type { PendingRead } from './batch.js';
import { BatchingAwsStore, inRegion, type AwsParts } from './store.js';
import { listProblem, shapeOf, stringProblem } from '../kit/json-shape.js';
import { bytesContent } from '../kit/content.js';
import type { FetchContext, FetchRequest, FetchResult, ListedSecret, ListPage, ListRequest } from '../types.js';
import type { SecretsManagerObjectSpec } from './fields.js';


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

export class SecretsManagerStore extends BatchingAwsStore<SecretsManagerObjectSpec, SecretRead> {
  constructor(private readonly sm: typeof Sm, parts: AwsParts) {
    super(parts, service);
  }

  async fetch({ ref, version, spec }: FetchRequest<SecretsManagerObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    if (ref.length > maxRefLength) throw new ProviderError('InvalidArgument', `ref must be a secret name or ARN of at most ${maxRefLength} characters`);
    const caller = this.callers.callerFor(ctx);
    const read: SecretRead = {
      secretId: ref,
      ...(version !== undefined ? { versionId: version } : {}),
      ...(spec.versionStage !== undefined ? { versionStage: spec.versionStage } : {}),
      signal: ctx.signal,
    };
    return raceSignal(this.batcher.add(caller, read), ctx.signal, awsCancelled);
  }

  /**
   * One page of BatchGetSecretValue with Filters (a name prefix, tag keys and values): the values
   * come with the listing. Needs secretsmanager:ListSecrets besides BatchGetSecretValue; a secret
   * the role may not read comes back in Errors and is listed without a value, so reading it fails
   * on its own (unless the store's access rules leave it out).
   */
  async list({ prefix, labels, page, spec }: ListRequest<SecretsManagerObjectSpec>, ctx: FetchContext): Promise<ListPage> {
    if (spec.versionStage !== undefined && spec.versionStage !== currentStage) {
      throw new ProviderError('InvalidArgument', 'find reads the AWSCURRENT version of each secret; remove versionStage');
    }
    const filters = [
      ...(prefix === '' ? [] : [{ Key: 'name' as const, Values: [prefix] }]),
      ...Object.entries(labels).flatMap(([key, value]) => [{ Key: 'tag-key' as const, Values: [key] }, { Key: 'tag-value' as const, Values: [value] }]),
    ];
    if (filters.length === 0) throw new ProviderError('InvalidArgument', 'find on Secrets Manager needs a prefix or labels');
    const caller = this.callers.callerFor(ctx);
    const doing = `listing the secrets under "${prefix}"`;
    const out = await this.listPage(caller, {
      doing,
      signal: ctx.signal,
      send: (target, credentials, fingerprint, abortSignal) => {
        const client = this.aws.clientFor('secretsmanager', target, caller.key, credentials, fingerprint, (c) => new this.sm.SecretsManagerClient(c));
        return client.send(new this.sm.BatchGetSecretValueCommand({ Filters: filters, MaxResults: batchLimit, ...(page ? { NextToken: page } : {}) }), { abortSignal });
      },
      problemOf: batchAnswerProblem,
    });
    const items: ListedSecret[] = [];
    for (const entry of out.SecretValues ?? []) {
      const name = entry.Name ?? '';
      // AWS matches the name filter loosely; the prefix is exact here.
      if (name.startsWith(prefix)) items.push({ ref: name, value: toResult(checkSecretValue(entry, { secretId: name, signal: ctx.signal })) });
    }
    for (const failed of out.Errors ?? []) if (failed.SecretId!.startsWith(prefix)) items.push({ ref: failed.SecretId! });
    return { items, ...(out.NextToken ? { next: out.NextToken } : {}) };
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
      const value = await this.aws.run(caller, async (target, credentials, fingerprint) => {
        const client = this.aws.clientFor('secretsmanager', target, caller.key, credentials, fingerprint, (c) => new this.sm.SecretsManagerClient(c));
        const input = {
          SecretId: inRegion(secretId, target.region),
          ...(versionId !== undefined ? { VersionId: versionId } : {}),
          ...(versionStage !== undefined ? { VersionStage: versionStage } : {}),
        };
        const answer = await this.aws.send([p.item.signal], (abortSignal) => client.send(new this.sm.GetSecretValueCommand(input), { abortSignal }));
        // Checked here, in the region that answered, so a malformed answer fails over like a 5xx.
        return checkSecretValue(answer, p.item);
      });
      p.resolve(toResult(value));
    } catch (err) {
      p.reject(describeAwsError(err, this.where(caller, describeRead(p.item))));
    }
  }

  async #readBatch(caller: AwsCaller, pending: readonly Pending[]): Promise<void> {
    const ids = [...new Set(pending.map((p) => p.item.secretId))];
    const done = await this.runBatch(caller, pending, {
      doing: `reading ${ids.length} secrets`,
      call: (target, credentials, fingerprint) => {
        const client = this.aws.clientFor('secretsmanager', target, caller.key, credentials, fingerprint, (c) => new this.sm.SecretsManagerClient(c));
        const command = new this.sm.BatchGetSecretValueCommand({ SecretIdList: ids.map((id) => inRegion(id, target.region)) });
        return this.aws.send(pending.map((p) => p.item.signal), (abortSignal) => client.send(command, { abortSignal }));
      },
      // A bad entry of a well-formed answer fails its own secret's reads only (below).
      problemOf: batchAnswerProblem,
      // Roles often may GetSecretValue but not BatchGetSecretValue: each object gets its own cause.
      oneByOne: () => Promise.all(pending.map((p) => this.#readOne(caller, p))),
    });
    if (!done) return;
    const { answer: out, region } = done;
    const leftOver: Pending[] = [];
    for (const p of pending) {
      const wanted = [p.item.secretId, inRegion(p.item.secretId, region)];
      const value = out.SecretValues?.find((v) => wanted.includes(v.ARN ?? '') || wanted.includes(v.Name ?? ''));
      const failed = out.Errors?.find((e) => wanted.includes(e.SecretId ?? ''));
      if (value) {
        try {
          p.resolve(toResult(checkSecretValue(value, p.item)));
        } catch (err) {
          p.reject(err);
        }
      } else if (failed) {
        const problem = stringProblem(failed.ErrorCode, 'its ErrorCode') ?? stringProblem(failed.Message, 'its Message');
        if (problem) p.reject(malformed(describeRead(p.item), problem));
        else p.reject(describeAwsError(itemError(failed.ErrorCode ?? 'Error', failed.Message), this.where(caller, describeRead(p.item), region)));
      } else leftOver.push(p);
    }
    // Partial ARNs and ids the answer did not name: the single call resolves them exactly.
    await Promise.all(leftOver.map((p) => this.#readOne(caller, p)));
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

/** A secret value whose shape was checked. */
interface SecretValue {
  readonly value: string | Uint8Array;
  readonly versionId?: string;
}

/**
 * The SDK checks no types: it decodes a SecretBinary string from base64 (failing on bad base64)
 * and passes any other JSON value through as it is. So the shape is checked here. A secret always
 * has a SecretString or a SecretBinary (a missing one is a ResourceNotFoundException, never a
 * 200), so a 200 with neither is malformed, not NotFound.
 */
function checkSecretValue(entry: unknown, read: SecretRead): SecretValue {
  const doing = describeRead(read);
  const { SecretString: string, SecretBinary: binary, VersionId: versionId, VersionStages: stages } = entry as Record<string, unknown>;
  const problem =
    stringProblem(string, 'its SecretString') ??
    (binary === undefined || binary instanceof Uint8Array ? undefined : `its SecretBinary is ${shapeOf(binary)}, not a base64 string`) ??
    (string === undefined && binary === undefined ? 'it has neither a SecretString nor a SecretBinary' : undefined) ??
    stringProblem(versionId, 'its VersionId') ??
    listProblem(stages, 'its VersionStages', 'string');
  if (problem) throw malformed(doing, problem);
  return {
    value: (string as string | undefined) ?? (binary as Uint8Array),
    ...(versionId ? { versionId: versionId as string } : {}),
  };
}

function toResult({ value, versionId }: SecretValue): FetchResult {
  const content = typeof value === 'string' ? bytesContent(value) : bytesContent(Buffer.from(value));
  return { content, ...(versionId ? { version: versionId } : {}) };
}

function malformed(doing: string, why: string): ProviderError {
  return malformedAnswer(service, doing, why);
}

/**
 * What makes a BatchGetSecretValue answer unusable as a whole: lists that are not lists, and
 * entries that do not say which secret they are, so no read can be matched to them.
 */
function batchAnswerProblem(out: Sm.BatchGetSecretValueCommandOutput): string | undefined {
  const token: unknown = out.NextToken;
  if (token !== undefined && token !== null && typeof token !== 'string') return `NextToken is ${shapeOf(token)}, not a string`;
  const listed = listProblem(out.SecretValues, 'SecretValues', 'object') ?? listProblem(out.Errors, 'Errors', 'object');
  if (listed) return listed;
  for (const entry of (out.SecretValues ?? []) as unknown[] as Array<Record<string, unknown>>) {
    const { Name: name, ARN: arn } = entry;
    if (name === undefined && arn === undefined) return 'SecretValues holds an entry with neither a Name nor an ARN';
    const problem = stringProblem(name, 'the Name of an entry of SecretValues') ?? stringProblem(arn, 'the ARN of an entry of SecretValues');
    if (problem) return problem;
  }
  for (const entry of (out.Errors ?? []) as unknown[] as Array<Record<string, unknown>>) {
    if (typeof entry['SecretId'] !== 'string') return `the SecretId of an entry of Errors is ${shapeOf(entry['SecretId'])}, not a string`;
  }
  return undefined;
}
