import { convertMode, emptyConversion, parseVendorObjects, reportUnknown, text, type Conversion, type OurObject, type Plain } from './migrate-conversion.js';

// Converts a class of GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp.

const gcpParameters = ['secrets', 'auth'];
const gcpSecretKeys = ['resourceName', 'path', 'fileName', 'mode', 'extractJSONKey', 'extractYAMLKey'];
const resourcePattern = /^(projects\/([^/]+)(?:\/locations\/[^/]+)?\/secrets\/[^/]+)\/versions\/([^/]+)$/;

export function convertGcp(parameters: Record<string, string>, storeName: string): Conversion {
  const c = emptyConversion();
  reportUnknown(parameters, gcpParameters, c);
  const projects = new Set<string>();
  parseVendorObjects(parameters.secrets, c).forEach((o, i) => {
    const at = `secrets[${i}]`;
    for (const key of Object.keys(o)) if (!gcpSecretKeys.includes(key)) c.attention.push(`${at}.${key}: unknown field; not converted`);
    const resource = text(o.resourceName);
    const match = resource === undefined ? null : resourcePattern.exec(resource);
    if (!match) c.problems.push(`${at}.resourceName: must be projects/P/secrets/S/versions/V or projects/P/locations/L/secrets/S/versions/V`);
    // The GCP provider prefers path over the older fileName.
    const name = text(o.path) ?? text(o.fileName);
    if (!name) c.problems.push(`${at}.path: missing (or fileName)`);
    if (!match || !name) return;
    projects.add(match[2]!);
    const object: OurObject = { name, store: storeName, ref: match[1]! };
    if (match[3] !== 'latest') object.version = match[3]!;
    convertExtraction(o, object, at, c);
    const mode = modeOf(o.mode, at, c);
    if (mode !== undefined) object.mode = mode;
    c.objects.push(object);
  });
  convertAuth(parameters.auth, c);
  const project = [...projects].find((p) => !/^\d+$/.test(p)) ?? 'my-project';
  const tokenAudience = `${project}.svc.id.goog`;
  c.stores.push({
    name: storeName,
    backend: 'gcp-secret-manager',
    audience: `identitynamespace:${tokenAudience}:https://container.googleapis.com/v1/projects/${project}/locations/LOCATION/clusters/CLUSTER`,
  });
  c.audiences.push(tokenAudience);
  c.attention.push(
    'store audience: fill in your GKE cluster\'s location and name; on other clusters use your workload identity pool provider (//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER) and request a token for it instead',
  );
  c.attention.push(
    'iam.gke.io/gcp-service-account: the GCP provider impersonated the Google service account this annotation names; this store reads as the pod\'s own principal unless you set its serviceAccount (e.g. "{namespace}-secrets@PROJECT.iam.gserviceaccount.com") or serviceAccountPattern',
  );
  return c;
}

function convertExtraction(o: Plain, object: OurObject, at: string, c: Conversion): void {
  const jsonKey = text(o.extractJSONKey);
  if (jsonKey !== undefined) object.key = jsonKey;
  if (text(o.extractYAMLKey) !== undefined) {
    c.attention.push(`${at}.extractYAMLKey: no equivalent (key and select read JSON); the whole secret is written, or store it as JSON and use key`);
  }
}

/** The GCP provider's mode: octal (0400) or decimal (256), both numbers once parsed. */
function modeOf(value: unknown, at: string, c: Conversion): string | undefined {
  const scratch = emptyConversion();
  const mode = convertMode(value, at, scratch);
  c.attention.push(...scratch.attention.map((line) => line.replace(`${at}.filePermission:`, `${at}.mode:`)));
  return mode;
}

function convertAuth(auth: string | undefined, c: Conversion): void {
  if (auth === undefined || auth === '' || auth === 'pod-adc') {
    c.notes.push('auth: pod-adc is how this store always reads: as the pod, through workload identity federation');
  } else if (auth === 'provider-adc') {
    c.attention.push('parameters.auth: provider-adc (the provider\'s own credentials) has no equivalent; the store reads as the pod, so grant the pod\'s principal roles/secretmanager.secretAccessor');
  } else {
    c.problems.push(`parameters.auth: ${JSON.stringify(auth)} is not pod-adc or provider-adc`);
  }
}
