/** Small helpers with no home of their own; nothing here knows about Mounts, stores or gRPC. */

/** The first line of a parser's message: YAML errors append a code frame we do not want to echo. */
export function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n', 1)[0]!.replace(/:$/, '');
}

/** A JSON-style object: not null, not an array, not a Buffer. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/** A UTF-16 surrogate without its pair: no UTF-8 form exists, and encodeURI throws on it. */
const loneSurrogates = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Whether `text` is valid Unicode: a lone UTF-16 surrogate cannot be URL-encoded or sent as UTF-8. */
export function isWellFormed(text: string): boolean {
  loneSurrogates.lastIndex = 0;
  return !loneSurrogates.test(text);
}

/** `text` with every lone surrogate replaced by U+FFFD. */
export function toWellFormed(text: string): string {
  return text.replace(loneSurrogates, '\uFFFD');
}
