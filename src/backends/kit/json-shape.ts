/**
 * Shape checks for store answers parsed from JSON. Client SDKs and our own HTTP clients check no
 * types, so backends check the fields they use and name what is wrong without quoting the body.
 */

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** What a JSON value is, for messages that must not quote it. */
export function shapeOf(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Why `value` (absent, or a list of `item`s) is not that, if it is not. */
export function listProblem(value: unknown, name: string, item: 'object' | 'string'): string | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) return `${name} is ${shapeOf(value)}, not a list`;
  const bad = value.find((v) => (item === 'object' ? !isObject(v) : typeof v !== 'string'));
  return bad === undefined ? undefined : `${name} holds ${shapeOf(bad)}, not ${item === 'object' ? 'an object' : 'a string'}`;
}

/** Why a field that is optional in the API but must be a string when present is not one. */
export function stringProblem(value: unknown, name: string): string | undefined {
  return value === undefined || typeof value === 'string' ? undefined : `${name} is ${shapeOf(value)}, not a string`;
}
