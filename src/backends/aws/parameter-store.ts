import type * as Ssm from '@aws-sdk/client-ssm';
import { raceSignal } from '../../abort.js';
import { ProviderError } from '../../errors.js';
import { describeAwsError, itemError, malformedAnswer, awsCancelled } from './errors.js';
import type { AwsCaller, AwsCredentials } from './credentials.js';
import type { AwsTarget } from './client.js';
import type { PendingRead } from './batch.js';
import { BatchingAwsStore, inRegion, type AwsParts } from './store.js';
import type { ParameterStoreObjectSpec } from './fields.js';
import { isObject, listProblem, shapeOf } from '../kit/json-shape.js';
import { bytesContent, fieldsContent } from '../kit/content.js';
import type { FetchContext, FetchRequest, FetchResult, ListPage, ListRequest } from '../types.js';


const service = 'AWS Systems Manager Parameter Store';
/** GetParameters takes at most 10 names per call. */
const batchLimit = 10;
/** GetParametersByPath pages hold at most 10 parameters. */
const pageSize = 10;
/** A path read that would mount more than this is refused rather than truncated. */
const maxPathParameters = 100;

type Pending = PendingRead<ParameterRead, FetchResult>;

export class ParameterStore extends BatchingAwsStore<ParameterStoreObjectSpec, ParameterRead> {
  constructor(private readonly ssm: typeof Ssm, parts: AwsParts) {
    super(parts, service);
  }

  async fetch({ ref, version, spec }: FetchRequest<ParameterStoreObjectSpec>, ctx: FetchContext): Promise<FetchResult> {
    if (ref.endsWith('/')) {
      if (version !== undefined) throw new ProviderError('InvalidArgument', 'version applies to one parameter, not to a path');
      const caller = this.callers.callerFor(ctx);
      return raceSignal(this.#readPath(caller, ref, spec.recursive, ctx.signal), ctx.signal, awsCancelled);
    }
    const read = parseRead(ref, version, ctx.signal);
    const caller = this.callers.callerFor(ctx);
    return raceSignal(this.batcher.add(caller, read), ctx.signal, awsCancelled);
  }

  /**
   * One page of GetParametersByPath under the prefix's folder (WithDecryption), kept to the names
   * that start with the prefix: the values come with the listing. Tags cannot filter it.
   */
  async list({ prefix, recursive, labels, page }: ListRequest<ParameterStoreObjectSpec>, ctx: FetchContext): Promise<ListPage> {
    if (Object.keys(labels).length > 0) throw new ProviderError('InvalidArgument', 'GetParametersByPath cannot filter by tags; remove find.labels');
    if (!prefix.startsWith('/')) throw new ProviderError('InvalidArgument', 'find.prefix must be a parameter path starting with "/", like "/shop/" or "/shop/db-"');
    const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const caller = this.callers.callerFor(ctx);
    const doing = `listing the parameters under "${prefix}"`;
    const input = { Path: folder === '/' ? '/' : folder.slice(0, -1), Recursive: recursive, WithDecryption: true, MaxResults: pageSize, ...(page ? { NextToken: page } : {}) };
    const out = await this.listPage(caller, {
      doing,
      signal: ctx.signal,
      send: (target, credentials, fingerprint, abortSignal) =>
        this.#client(caller, target, credentials, fingerprint).send(new this.ssm.GetParametersByPathCommand(input), { abortSignal }),
      problemOf: pageProblem,
    });
    const items = (out.Parameters ?? [])
      .filter((p) => p.Name!.startsWith(prefix))
      .map((p) => ({ ref: p.Name!, value: { content: bytesContent(p.Value!), ...(typeof p.Version === 'number' ? { version: String(p.Version) } : {}) } }));
    return { items, ...(out.NextToken ? { next: out.NextToken } : {}) };
  }

  /** Two or more distinct names go in GetParameters calls of ten; a lone one in GetParameter. */
  protected async flush(caller: AwsCaller, pending: readonly Pending[]): Promise<void> {
    const bySelector = new Map<string, Pending[]>();
    for (const p of pending) bySelector.set(p.item.selector, [...(bySelector.get(p.item.selector) ?? []), p]);
    const groups = [...bySelector.values()];
    if (groups.length === 1) return this.#readOne(caller, groups[0]!);
    const chunks: Pending[][][] = [];
    for (let i = 0; i < groups.length; i += batchLimit) chunks.push(groups.slice(i, i + batchLimit));
    await Promise.all(chunks.map((chunk) => this.#readBatch(caller, chunk)));
  }

  async #readOne(caller: AwsCaller, group: readonly Pending[]): Promise<void> {
    const read = group[0]!.item;
    try {
      const out = await this.aws.run(caller, async (target, credentials, fingerprint) => {
        const command = new this.ssm.GetParameterCommand({ Name: inRegion(read.selector, target.region), WithDecryption: true });
        const client = this.#client(caller, target, credentials, fingerprint);
        const answer = await this.aws.send(group.map((p) => p.item.signal), (abortSignal) => client.send(command, { abortSignal }));
        // Checked here, in the region that answered, so a malformed answer fails over like a 5xx.
        checkParameter(answer.Parameter, read);
        return answer;
      });
      settle(group, () => toResult(out.Parameter, read));
    } catch (err) {
      const error = describeAwsError(err, this.where(caller, describeRead(read)));
      for (const p of group) p.reject(error);
    }
  }

  async #readBatch(caller: AwsCaller, groups: readonly Pending[][]): Promise<void> {
    const all = groups.flat();
    const names = (region: string) => groups.map((g) => inRegion(g[0]!.item.selector, region));
    const done = await this.runBatch(caller, all, {
      doing: `reading ${groups.length} parameters`,
      call: (target, credentials, fingerprint) =>
        this.aws.send(all.map((p) => p.item.signal), (abortSignal) =>
          this.#client(caller, target, credentials, fingerprint).send(new this.ssm.GetParametersCommand({ Names: names(target.region), WithDecryption: true }), { abortSignal }),
        ),
      problemOf: batchAnswerProblem,
      // GetParameters is denied as a whole when any one name is; one bad parameter of a
      // well-formed answer fails its own reads only (below).
      oneByOne: () => Promise.all(groups.map((g) => this.#readOne(caller, g))),
    });
    if (!done) return;
    const { answer: out, region } = done;
    const leftOver: Pending[][] = [];
    for (const group of groups) {
      const read = group[0]!.item;
      const requested = inRegion(read.selector, region);
      const found = findParameter(out.Parameters ?? [], read, region);
      if (found) settle(group, () => toResult(found, read));
      else if (out.InvalidParameters?.includes(requested) || out.InvalidParameters?.includes(read.selector)) {
        const error = describeAwsError(itemError(read.pin === undefined ? 'ParameterNotFound' : 'ParameterVersionNotFound', undefined), this.where(caller, describeRead(read), region));
        for (const p of group) p.reject(error);
      } else leftOver.push(group);
    }
    await Promise.all(leftOver.map((g) => this.#readOne(caller, g)));
  }

  async #readPath(caller: AwsCaller, ref: string, recursive: boolean, signal: AbortSignal): Promise<FetchResult> {
    if (!ref.startsWith('/')) {
      throw new ProviderError('InvalidArgument', 'a path ref must start with "/" and end with "/", like "/shop/prod/"');
    }
    const path = ref === '/' ? '/' : ref.replace(/\/+$/, '');
    try {
      const parameters = await this.aws.run(caller, (target, credentials, fingerprint) =>
        this.#listPath(this.#client(caller, target, credentials, fingerprint), path, recursive, signal, ref),
      );
      const prefix = path === '/' ? '/' : `${path}/`;
      const fields: Record<string, Buffer> = {};
      for (const p of parameters) {
        // pageProblem made sure Name and Value are strings.
        if (!p.Name!.startsWith(prefix)) continue;
        fields[p.Name!.slice(prefix.length)] = Buffer.from(p.Value!, 'utf8');
      }
      return { content: fieldsContent(fields) };
    } catch (err) {
      throw describeAwsError(err, this.where(caller, `reading the parameters under "${ref}"`));
    }
  }

  async #listPath(client: Ssm.SSMClient, path: string, recursive: boolean, signal: AbortSignal, ref: string): Promise<Ssm.Parameter[]> {
    const parameters: Ssm.Parameter[] = [];
    let nextToken: string | undefined;
    do {
      const input = { Path: path, Recursive: recursive, WithDecryption: true, MaxResults: pageSize, ...(nextToken ? { NextToken: nextToken } : {}) };
      const command = new this.ssm.GetParametersByPathCommand(input);
      const page = await this.aws.send([signal], (abortSignal) => client.send(command, { abortSignal }));
      const problem = pageProblem(page);
      if (problem) throw malformed(`reading the parameters under "${ref}"`, problem);
      parameters.push(...(page.Parameters ?? []));
      if (parameters.length > maxPathParameters) {
        throw new ProviderError('InvalidArgument', `more than ${maxPathParameters} parameters under "${ref}"; mount a narrower path`);
      }
      nextToken = page.NextToken || undefined;
    } while (nextToken);
    return parameters;
  }

  #client(caller: AwsCaller, target: AwsTarget, credentials: AwsCredentials, fingerprint: string): Ssm.SSMClient {
    return this.aws.clientFor('ssm', target, caller.key, credentials, fingerprint, (c) => new this.ssm.SSMClient(c));
  }
}

const namePattern = /^[a-zA-Z0-9_.\-/]{1,2048}$/;
const arnPattern = /^(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter)(\/?[a-zA-Z0-9_.\-/]{1,2048})$/;
const pinPattern = /^(\d{1,10}|[a-zA-Z][a-zA-Z0-9_.-]{0,99})$/;

interface ParameterRead {
  /** Name or ARN with an optional `:version` or `:label` selector, as GetParameters takes it. */
  readonly selector: string;
  readonly base: string;
  readonly pin?: string;
  readonly signal: AbortSignal;
}

/** Splits `name[:pin]` or `arn...:parameter/name[:pin]` and merges the object's `version`. */
function parseRead(ref: string, version: string | undefined, signal: AbortSignal): ParameterRead {
  const arn = /^arn:/.test(ref);
  const prefixEnd = arn ? ref.indexOf(':parameter') + ':parameter'.length : 0;
  const colon = ref.indexOf(':', arn ? prefixEnd : 0);
  const base = colon >= 0 ? ref.slice(0, colon) : ref;
  const inlinePin = colon >= 0 ? ref.slice(colon + 1) : undefined;
  if (arn ? !arnPattern.test(base) : !namePattern.test(base)) {
    throw new ProviderError('InvalidArgument', 'ref must be a parameter name like "/shop/db/password" or its ARN, optionally with ":version" or ":label"');
  }
  if (inlinePin !== undefined && version !== undefined) {
    throw new ProviderError('InvalidArgument', 'set the parameter version or label either in ref or in version, not both');
  }
  const pin = inlinePin ?? version;
  if (pin !== undefined && !pinPattern.test(pin)) {
    throw new ProviderError('InvalidArgument', 'version must be a parameter version number or a label (letters, digits, "_", "." and "-", starting with a letter)');
  }
  return { selector: pin === undefined ? base : `${base}:${pin}`, base, ...(pin !== undefined ? { pin } : {}), signal };
}

function describeRead(read: ParameterRead): string {
  const pin = read.pin === undefined ? '' : /^\d+$/.test(read.pin) ? ` (version ${read.pin})` : ` (label ${read.pin})`;
  return `reading parameter "${read.base}"${pin}`;
}

/** The answer's parameter for one read: by name or ARN, and by selector when AWS echoes it. */
function findParameter(parameters: readonly Ssm.Parameter[], read: ParameterRead, region: string): Ssm.Parameter | undefined {
  const bases = [read.base, inRegion(read.base, region)];
  const named = parameters.filter((p) => bases.includes(p.Name ?? '') || bases.includes(p.ARN ?? ''));
  const pin = read.pin ?? '';
  const exact = named.find((p) => String(p.Selector ?? '').replace(/^:/, '') === pin);
  if (exact) return exact;
  return named.length === 1 && named[0]!.Selector === undefined ? named[0] : undefined;
}

/**
 * The SDK does not check types, so the answer's shape is checked here: a missing parameter is a
 * ParameterNotFound error, never a 200, so a 200 without a string Value is malformed.
 */
function checkParameter(parameter: unknown, read: ParameterRead): { value: string; version?: number } {
  if (!isObject(parameter)) throw malformed(describeRead(read), `the Parameter is ${shapeOf(parameter)}, not an object`);
  const { Value: value, Version: version } = parameter as Ssm.Parameter;
  if (typeof value !== 'string') throw malformed(describeRead(read), `its Value is ${shapeOf(value)}, not a string`);
  if (version !== undefined && typeof version !== 'number') throw malformed(describeRead(read), `its Version is ${shapeOf(version)}, not a number`);
  return { value, ...(version !== undefined ? { version } : {}) };
}

function toResult(parameter: unknown, read: ParameterRead): FetchResult {
  const { value, version } = checkParameter(parameter, read);
  return {
    content: bytesContent(value),
    ...(version !== undefined ? { version: String(version) } : {}),
  };
}

function malformed(doing: string, why: string): ProviderError {
  return malformedAnswer(service, doing, why);
}

/** Every entry of Parameters must name its parameter, or no read could be matched to it. */
function namesProblem(parameters: unknown): string | undefined {
  for (const p of (parameters as Array<Record<string, unknown>> | undefined) ?? []) {
    if (typeof p['Name'] !== 'string') return `Parameters holds an entry whose Name is ${shapeOf(p['Name'])}, not a string`;
  }
  return undefined;
}

function batchAnswerProblem(out: Ssm.GetParametersCommandOutput): string | undefined {
  return (
    listProblem(out.Parameters, 'Parameters', 'object') ??
    namesProblem(out.Parameters) ??
    listProblem(out.InvalidParameters, 'InvalidParameters', 'string')
  );
}

function pageProblem(page: Ssm.GetParametersByPathCommandOutput): string | undefined {
  const token: unknown = page.NextToken;
  if (token !== undefined && token !== null && typeof token !== 'string') return `NextToken is ${shapeOf(token)}, not a string`;
  const problem = listProblem(page.Parameters, 'Parameters', 'object') ?? namesProblem(page.Parameters);
  if (problem) return problem;
  const bad = (page.Parameters ?? []).find((p) => typeof p.Value !== 'string');
  return bad ? `the Value of a parameter is ${shapeOf(bad.Value)}, not a string` : undefined;
}

/** Every read of one selector gets its own copy of the answer. */
function settle(group: readonly Pending[], make: () => FetchResult): void {
  for (const p of group) {
    try {
      p.resolve(make());
    } catch (err) {
      p.reject(err);
    }
  }
}
