import { ProviderError } from './errors.js';
import type { Secret } from './secret.js';

/** The pod a Mount is for, as the driver describes it. */
export interface Identity {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly podName: string;
  readonly podUid: string;
}

export interface PodToken {
  readonly token: Secret<string>;
  /** Milliseconds since the epoch; undefined when the driver did not say. */
  readonly expiresAt?: number;
}

/** The only way a backend obtains the pod's service-account token. */
export interface TokenSource {
  /** The pod's token for `audience` ("" is the API server's own). Throws PermissionDenied. */
  tokenFor(audience: string): string;
}

/** Seconds of validity a token must still have to be worth presenting to a store. */
const minRemainingMs = 5_000;

export function createTokenSource(
  tokens: ReadonlyMap<string, PodToken>,
  now: () => number,
): TokenSource {
  return {
    tokenFor(audience) {
      const entry = tokens.get(audience);
      const shown = JSON.stringify(audience);
      if (!entry) {
        throw new ProviderError(
          'PermissionDenied',
          `no service-account token for audience ${shown}: add {audience: ${shown}} to tokenRequests ` +
            `of the CSIDriver secrets-store.csi.k8s.io`,
        );
      }
      if (entry.expiresAt !== undefined && entry.expiresAt - minRemainingMs <= now()) {
        throw new ProviderError(
          'PermissionDenied',
          `the service-account token for audience ${shown} expired at ${new Date(entry.expiresAt).toISOString()}`,
        );
      }
      return entry.token.reveal();
    },
  };
}
