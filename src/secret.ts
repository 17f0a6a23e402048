import { inspect } from 'node:util';

const REDACTED = '[REDACTED]';

/**
 * Holds secret material so that accidental printing (template strings, JSON logs, util.inspect)
 * shows `[REDACTED]`. Read the value only with `reveal()`, where it is really needed.
 */
export class Secret<T = Buffer> {
  readonly #value: T;
  constructor(value: T) {
    this.#value = value;
  }
  reveal(): T {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}
