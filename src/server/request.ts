import { ProviderError } from '../errors.js';
import { Secret } from '../secret.js';
import { isPlainObject } from '../util.js';
import type { Identity, PodToken } from '../identity.js';
import { podNameRules, type MountInput } from '../mount/input.js';

/** The Mount request as it arrives over gRPC (proto-loader's camelCase). */
export interface MountRequestMessage {
  readonly attributes: string;
  readonly secrets: string;
  readonly targetPath: string;
  readonly permission: string;
}

const podKeys = {
  namespace: 'csi.storage.k8s.io/pod.namespace',
  name: 'csi.storage.k8s.io/pod.name',
  uid: 'csi.storage.k8s.io/pod.uid',
  serviceAccount: 'csi.storage.k8s.io/serviceAccount.name',
} as const;
export const tokensKey = 'csi.storage.k8s.io/serviceAccount.tokens';
const driverKeyPrefix = 'csi.storage.k8s.io/';
const classKey = 'secretProviderClass';
const maxFieldBytes = 1024 * 1024;

/**
 * Parses the driver's untrusted request strings into the pipeline's typed MountInput: the first
 * step of every Mount the gRPC server serves. Messages never quote input.
 */
export function parseMountRequest(request: MountRequestMessage): MountInput {
  const attributes = parseStringMap(request.attributes, 'attributes', false);
  const secrets = parseStringMap(request.secrets, 'secrets', true);
  const identity: Identity = {
    namespace: requireName(attributes, podKeys.namespace, podNameRules.namespace),
    serviceAccount: requireName(attributes, podKeys.serviceAccount, podNameRules.serviceAccount),
    podName: attributes.get(podKeys.name) ?? '',
    podUid: attributes.get(podKeys.uid) ?? '',
  };
  const tokens = new Map([
    ...parseTokens(secrets.get(tokensKey), `secrets["${tokensKey}"]`),
    ...parseTokens(attributes.get(tokensKey), `attributes["${tokensKey}"]`),
  ]);
  const parameters = new Map([...attributes].filter(([k]) => !k.startsWith(driverKeyPrefix) && k !== classKey));
  const secretValues = new Map(
    [...secrets].filter(([k]) => k !== tokensKey).map(([k, v]) => [k, new Secret(v)] as const),
  );
  return {
    identity,
    className: attributes.get(classKey),
    parameters,
    tokens,
    secrets: secretValues,
    defaultMode: parsePermission(request.permission),
  };
}

function parseStringMap(text: string, field: string, nullable: boolean): Map<string, string> {
  if (nullable && (text === '' || text === 'null')) return new Map();
  if (text.length > maxFieldBytes) throw invalid(`${field}: larger than ${maxFieldBytes} bytes`);
  const value = parseJson(text, field);
  if (!isPlainObject(value)) throw invalid(`${field}: must be a JSON object`);
  const out = new Map<string, string>();
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw invalid(`${field}: the value of ${JSON.stringify(key.slice(0, 100))} must be a string`);
    out.set(key, v);
  }
  return out;
}

/** Pod names feed access rules and store logins, so they must be real Kubernetes names. */
function requireName(attributes: Map<string, string>, key: string, rule: RegExp): string {
  const value = attributes.get(key);
  if (!value) throw invalid(`attributes: "${key}" is missing; is podInfoOnMount enabled on the CSIDriver?`);
  if (!rule.test(value)) throw invalid(`attributes: "${key}" is not a valid Kubernetes name`);
  return value;
}

function parseTokens(text: string | undefined, field: string): Map<string, PodToken> {
  const out = new Map<string, PodToken>();
  if (text === undefined || text === '') return out;
  const value = parseJson(text, field);
  if (!isPlainObject(value)) throw invalid(`${field}: must be a JSON object of audience to token`);
  for (const [audience, entry] of Object.entries(value)) {
    if (!isPlainObject(entry) || typeof entry.token !== 'string') {
      throw invalid(`${field}: the entry for audience ${JSON.stringify(audience.slice(0, 100))} has no token`);
    }
    const expiresAt =
      typeof entry.expirationTimestamp === 'string' ? Date.parse(entry.expirationTimestamp) : Number.NaN;
    out.set(audience, { token: new Secret(entry.token), expiresAt: Number.isNaN(expiresAt) ? undefined : expiresAt });
  }
  return out;
}

/** The driver sends the default mode as decimal text ("420" is 0644). */
function parsePermission(text: string): number {
  if (text === '') return 0o644;
  if (!/^\d{1,3}$/.test(text) || Number(text) > 0o777) {
    throw invalid('permission: must be a decimal file mode between 0 and 511');
  }
  return Number(text);
}

/** JSON.parse whose failure message never quotes the input (it can be a token). */
function parseJson(text: string, field: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalid(`${field}: not valid JSON`);
  }
}

function invalid(message: string): ProviderError {
  return new ProviderError('InvalidArgument', message);
}
