/**
 * Replaces every occurrence of the given secrets (tokens, keys) in a store's own error text.
 * Short strings are left alone: they would blank out ordinary words, and a secret that short
 * protects nothing.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join('[REDACTED]');
  return out;
}

/** A store's error text bounded to `max` characters, then redacted. */
export function quoteStoreText(text: string, secrets: readonly string[], max = 300): string {
  const bounded = text.length > max ? `${text.slice(0, max)}...` : text;
  return redact(bounded, secrets);
}
