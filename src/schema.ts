import { z } from 'zod';
import { ProviderError } from './errors.js';

/** Renders a field path like `stores[1].auth.role`, prefixed with `at`. */
export function fieldPath(at: string, path: readonly PropertyKey[]): string {
  let out = at;
  for (const part of path) {
    out += typeof part === 'number' ? `[${part}]` : out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

/** One line per problem, each naming its field: `objects[2].mode: ...`. `input` lets a message name a bad choice. */
export function describeIssues(error: z.ZodError, at: string, input?: unknown): string[] {
  const lines: string[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${fieldPath(at, [...issue.path, key])}: unknown field`);
    } else if (issue.code === 'invalid_union' && 'options' in issue && Array.isArray(issue.options)) {
      // A discriminated union (a store's `backend`): name the value and every choice.
      const value = valueAt(input, issue.path);
      const given = value === undefined ? 'required' : `unknown ${String(issue.path.at(-1))} ${JSON.stringify(value)}`;
      lines.push(`${fieldPath(at, issue.path)}: ${given} (one of: ${issue.options.map(String).join(', ')})`);
    } else {
      lines.push(`${fieldPath(at, issue.path)}: ${issue.message}`);
    }
  }
  return lines;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return typeof value === 'string' ? value.slice(0, 100) : value;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: string[] };

export function parseWith<T>(schema: z.ZodType<T>, value: unknown, at: string): Parsed<T> {
  const result = schema.safeParse(value);
  return result.success ? { ok: true, value: result.data } : { ok: false, problems: describeIssues(result.error, at, value) };
}

/** Parses or throws InvalidArgument listing every problem. */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, at: string): T {
  const parsed = parseWith(schema, value, at);
  if (!parsed.ok) throw new ProviderError('InvalidArgument', parsed.problems.join('; '));
  return parsed.value;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration as `500ms`, `30s`, `5m`, `1h`, or a number of seconds; parsed to milliseconds. */
export const duration = z.union([z.number().nonnegative(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return Math.round(value * 1000);
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration (use e.g. 500ms, 30s, 5m, 1h)` });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * durationUnits[match[2]!]!);
});
