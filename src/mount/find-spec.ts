import { z } from 'zod';

/** What a `find` object selects, after defaults and the config's cap. */
export interface FindSelection {
  readonly prefix: string;
  readonly recursive: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly limit: number;
}

export const defaultFindLimit = 100;

export const findFields = z
  .strictObject({
    prefix: z
      .string()
      .max(2048)
      .default('')
      .describe('Ref prefix in the store\'s ref form (`app/` for a folder, `app/db-` for names starting so); each found ref relative to it names its file.'),
    recursive: z.boolean().default(false).describe('Also find secrets in folders below the prefix (file, vault, aws-parameter-store).'),
    labels: z
      .record(z.string().min(1).max(317), z.string().max(256))
      .default({})
      .describe('Labels (Kubernetes) or tags (AWS, Azure, GCP) every secret found must carry, as a map of key to value.'),
    limit: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Most secrets the object may find; more is an error naming the count. Default 100, at most the config\'s limits.maxObjects.'),
  })
  .describe('Mount every secret under a prefix (or with labels) as one file each under `name`; instead of ref.');

type FindInput = z.infer<typeof findFields>;

/** Fields a single object has that a found set cannot: `find` stands for many refs. */
const singleOnly = ['ref', 'version', 'optional'] as const;

/** Checks a find object's common fields; problems are `at.field: message`. */
export function checkFind(
  o: { readonly find?: FindInput; readonly ref?: string; readonly version?: string; readonly optional: boolean },
  at: string,
  maxObjects: number,
  problems: string[],
): FindSelection | undefined {
  if (o.find === undefined) {
    if (o.ref === undefined) problems.push(`${at}.ref: required (or find, to mount every secret under a prefix)`);
    return undefined;
  }
  for (const field of singleOnly) {
    const set = field === 'optional' ? o.optional : o[field] !== undefined;
    if (set) problems.push(`${at}.${field}: does not apply to a find object (an empty set is not an error; each secret found has its own version)`);
  }
  const limit = o.find.limit ?? Math.min(defaultFindLimit, maxObjects);
  if (limit > maxObjects) problems.push(`${at}.find.limit: ${limit} is above the config's limits.maxObjects (${maxObjects})`);
  return { prefix: o.find.prefix, recursive: o.find.recursive, labels: o.find.labels, limit };
}
