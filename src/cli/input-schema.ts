import { z } from 'zod';
import { duration } from '../schema.js';

/** The parts of a generated JSON Schema that the reference and `usp schema` read or adjust. */
export type JsonSchema = {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  default?: unknown;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  additionalProperties?: unknown;
  /** Marks a duration: a number of seconds or a string like `30s`. */
  'x-duration'?: boolean;
};

/** What `duration` accepts as text; it trims first, as the parser does. */
export const durationPattern = String.raw`^\s*\d+(\.\d+)?(ms|s|m|h)\s*$`;

const durationInput = (duration._zod.def as { in: unknown }).in;

function isDuration(schema: z.core.$ZodType): boolean {
  const def = schema._zod.def as { type: string; in?: unknown };
  return def.type === 'pipe' && def.in === durationInput;
}

/** A duration in milliseconds as a user writes it. */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * JSON Schema (draft 2020-12) of the input a user writes, not of the parsed value. Durations are
 * marked with `x-duration`, their text form gets its pattern, and their defaults are written as a
 * user would (`60s`): the parsed default is in milliseconds, which as input would read as seconds.
 */
export function inputJsonSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'throw',
    override(ctx) {
      const json = ctx.jsonSchema as JsonSchema;
      const def = ctx.zodSchema._zod.def as { type: string; innerType?: z.core.$ZodType; defaultValue?: unknown };
      if (isDuration(ctx.zodSchema)) {
        json['x-duration'] = true;
        for (const branch of json.anyOf ?? []) if (branch.type === 'string') branch.pattern = durationPattern;
      }
      if (def.type === 'default' && def.innerType && isDuration(def.innerType)) {
        json['x-duration'] = true;
        json.default = formatDuration(def.defaultValue as number);
      }
    },
  }) as JsonSchema;
}
