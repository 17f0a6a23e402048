import { readFile, writeFile } from 'node:fs/promises';
import { Document, parse as parseYaml, parseAllDocuments, Scalar, stringify } from 'yaml';
import { isPlainObject } from '../util.js';
import { UsageError } from './class-file.js';
import { parseFlags, requireFlag, type Io } from './flags.js';

export const migrateUsage = `usage: usp migrate --from vault|aws --class VENDOR_SPC.yaml [--store NAME] [--role ARN] [--out FILE]
Converts a vault-csi-provider or AWS provider SecretProviderClass into one for this provider and
reports the store entry the provider config needs and anything without an equivalent. The class
goes to --out (else stdout, with the report on stderr). --store names the store (default vault,
or aws and aws-ssm); --role fills the IAM role ARN of IRSA stores. Exit: 0 converted (read the
"needs attention" list), 1 not convertible, 2 usage.
`;

type Vendor = 'vault' | 'aws';
type Plain = Record<string, unknown>;

/** One object of our class, in the order its fields are written. */
type OurObject = Plain;

interface Conversion {
  readonly objects: OurObject[];
  readonly role?: string;
  /** Store entries to add to the provider config. */
  readonly stores: Plain[];
  /** Audiences the CSIDriver must request tokens for. */
  readonly audiences: string[];
  /** Settings with no equivalent, or values only the admin or app team can supply. */
  readonly attention: string[];
  /** Differences worth knowing that need no action. */
  readonly notes: string[];
  /** Problems that make the class unconvertible. */
  readonly problems: string[];
}

interface VendorClass {
  readonly apiVersion: unknown;
  readonly metadata: Plain;
  readonly spec: Plain;
  readonly parameters: Record<string, string>;
}

/** `usp migrate`: a vendor SecretProviderClass in, ours out, plus what the admin must configure. */
export async function runMigrate(args: string[], io: Io): Promise<number> {
  const flags = parseFlags(args, {
    from: { type: 'string' },
    class: { type: 'string' },
    store: { type: 'string' },
    role: { type: 'string' },
    out: { type: 'string' },
  });
  const from = requireFlag(flags.from, 'from');
  if (from !== 'vault' && from !== 'aws') throw new UsageError('--from: vault or aws');
  const path = requireFlag(flags.class, 'class');
  const store = typeof flags.store === 'string' ? flags.store : undefined;
  if (store !== undefined && !/^[a-z0-9]([-a-z0-9]{0,57}[a-z0-9])?$/.test(store)) {
    throw new UsageError('--store: a DNS label (lowercase letters, digits, -) of at most 59 characters');
  }
  const vendor = await readVendorClass(path, from);
  const conversion =
    from === 'vault'
      ? convertVault(vendor.parameters, store ?? 'vault')
      : convertAws(vendor.parameters, store ?? 'aws', typeof flags.role === 'string' ? flags.role : undefined);
  const name = describeClass(vendor);
  if (conversion.problems.length > 0) {
    io.stderr(`cannot convert ${name}:\n${conversion.problems.map((p) => `  - ${p}\n`).join('')}`);
    return 1;
  }
  const output = renderClass(vendor, conversion, from);
  const report = renderReport(name, from, conversion, typeof flags.out === 'string' ? flags.out : undefined);
  if (typeof flags.out === 'string') {
    await writeFile(flags.out, output);
    io.stdout(report);
  } else {
    io.stdout(output);
    io.stderr(report);
  }
  return 0;
}

async function readVendorClass(path: string, from: Vendor): Promise<VendorClass> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--class: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new UsageError(`--class: ${path} is not valid YAML: ${doc.errors[0]!.message.split('\n', 1)[0]}`);
    const value: unknown = doc.toJS({ maxAliasCount: 0 });
    if (!isPlainObject(value) || value.kind !== 'SecretProviderClass') continue;
    const spec = isPlainObject(value.spec) ? value.spec : {};
    if (spec.provider !== from) {
      throw new UsageError(`--class: ${path} is a class for provider ${JSON.stringify(spec.provider ?? '')}, not ${from}`);
    }
    const parameters = isPlainObject(spec.parameters) ? spec.parameters : {};
    const nonString = Object.entries(parameters).find(([, v]) => typeof v !== 'string');
    if (nonString) throw new UsageError(`--class: spec.parameters.${nonString[0]} must be a string (Kubernetes requires it)`);
    return {
      apiVersion: value.apiVersion,
      metadata: isPlainObject(value.metadata) ? value.metadata : {},
      spec,
      parameters: parameters as Record<string, string>,
    };
  }
  throw new UsageError(`--class: ${path} holds no SecretProviderClass`);
}

function describeClass(vendor: VendorClass): string {
  const { name, namespace } = vendor.metadata;
  return `SecretProviderClass ${typeof namespace === 'string' ? `${namespace}/` : ''}${typeof name === 'string' ? name : 'unnamed'}`;
}

function emptyConversion(): Conversion {
  return { objects: [], stores: [], audiences: [], attention: [], notes: [], problems: [] };
}

/**
 * The vendor's `objects` parameter: a YAML list. Vendors parse it as YAML 1.1, where `0600` is
 * octal, so we do too.
 */
function parseVendorObjects(text: string | undefined, c: Conversion, listKey?: string): Plain[] {
  if (text === undefined || text.trim() === '') {
    c.problems.push('parameters.objects: missing');
    return [];
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { version: '1.1', maxAliasCount: 0 });
  } catch (err) {
    c.problems.push(`parameters.objects: not valid YAML (${(err as Error).message.split('\n', 1)[0]})`);
    return [];
  }
  // vault-csi-provider also accepts the older `array:` wrapper of one-object YAML strings.
  if (listKey && isPlainObject(raw) && Array.isArray(raw[listKey])) {
    raw = raw[listKey].map((entry) => (typeof entry === 'string' ? parseYaml(entry, { version: '1.1' }) : entry));
  }
  if (!Array.isArray(raw)) {
    c.problems.push('parameters.objects: must be a YAML list');
    return [];
  }
  return raw.flatMap((entry, i) => {
    if (isPlainObject(entry)) return [entry];
    c.problems.push(`objects[${i}]: must be a mapping`);
    return [];
  });
}

/** File modes: octal text (`"0600"`) or, after YAML 1.1 parsing, the mode's number (`0600` is 384). */
function convertMode(value: unknown, at: string, c: Conversion): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const mode = typeof value === 'number' ? value : /^0?o?[0-7]{1,4}$/i.test(String(value).trim()) ? Number.parseInt(String(value).trim().replace(/^0o/i, ''), 8) : Number.NaN;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    c.attention.push(`${at}.filePermission: ${JSON.stringify(value)} is not a file mode; left out (the default 0644 applies)`);
    return undefined;
  }
  return `0${mode.toString(8).padStart(3, '0')}`;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

function isTrue(value: string | undefined): boolean {
  return value !== undefined && /^(true|1|yes)$/i.test(value.trim());
}

function reportUnknown(parameters: Record<string, string>, known: readonly string[], c: Conversion): void {
  for (const key of Object.keys(parameters)) {
    if (!known.includes(key)) c.attention.push(`parameters.${key}: not a parameter this converter knows; not converted`);
  }
}

// ---------------------------------------------------------------------------------------------
// hashicorp/vault-csi-provider

const vaultParameters = [
  'objects',
  'roleName',
  'vaultAddress',
  'vaultNamespace',
  'vaultKubernetesMountPath',
  'vaultAuthMountPath',
  'audience',
  'vaultCACertPath',
  'vaultCADirectory',
  'vaultTLSServerName',
  'vaultTLSClientCertPath',
  'vaultTLSClientKeyPath',
  'vaultSkipTLSVerify',
];
const vaultObjectKeys = ['objectName', 'secretPath', 'secretKey', 'method', 'secretArgs', 'encoding', 'filePermission'];

export function convertVault(parameters: Record<string, string>, storeName: string): Conversion {
  const c = emptyConversion();
  reportUnknown(parameters, vaultParameters, c);
  const vendorObjects = parseVendorObjects(parameters.objects, c, 'array');
  vendorObjects.forEach((o, i) => {
    const at = `objects[${i}]`;
    for (const key of Object.keys(o)) if (!vaultObjectKeys.includes(key)) c.attention.push(`${at}.${key}: unknown field; not converted`);
    const name = text(o.objectName);
    const path = text(o.secretPath);
    if (!name) c.problems.push(`${at}.objectName: missing`);
    if (!path) c.problems.push(`${at}.secretPath: missing`);
    if (!name || !path) return;
    // vault-csi-provider accepts `/v1/secret/...`, `v1/secret/...` and `/secret/...`.
    const ref = path.replace(/^\/+/, '').replace(/^v1\//, '');
    const object: OurObject = { name, store: storeName, ref };
    const method = text(o.method)?.toUpperCase();
    if (method !== undefined && method !== 'GET') {
      if (method === 'POST' || method === 'PUT') object.method = method;
      else c.attention.push(`${at}.method: ${JSON.stringify(o.method)} is not GET, POST or PUT; left out`);
    }
    if (o.secretArgs !== undefined) {
      if (!isPlainObject(o.secretArgs)) c.attention.push(`${at}.secretArgs: not a mapping; left out`);
      else if (object.method === undefined) {
        c.attention.push(`${at}.secretArgs: args need method POST or PUT here (a GET carries no body); left out`);
      } else object.args = o.secretArgs;
    }
    const key = text(o.secretKey);
    if (key !== undefined) object.key = key;
    else if (object.method === undefined) {
      c.notes.push(`${at} "${name}": without secretKey, vault-csi-provider wrote Vault's whole JSON response; this provider writes the secret's data as JSON`);
    }
    const encoding = text(o.encoding)?.toLowerCase();
    if (encoding === 'base64' || encoding === 'hex') object.decode = encoding;
    else if (encoding !== undefined && encoding !== 'utf-8' && encoding !== 'utf8') {
      c.attention.push(`${at}.encoding: ${JSON.stringify(o.encoding)} has no equivalent (base64 and hex do); left out`);
    }
    const mode = convertMode(o.filePermission, at, c);
    if (mode !== undefined) object.mode = mode;
    c.objects.push(object);
  });

  const store: Plain = { name: storeName, backend: 'vault' };
  if (parameters.vaultAddress) store.address = parameters.vaultAddress;
  else {
    store.address = 'https://vault.vault.svc:8200';
    c.attention.push('parameters.vaultAddress: not set, so vault-csi-provider used its -vault-addr flag; set the store address (a placeholder is shown)');
  }
  if (parameters.vaultNamespace) store.namespace = parameters.vaultNamespace;
  const tls: Plain = {};
  if (parameters.vaultCACertPath) tls.caFile = parameters.vaultCACertPath;
  if (parameters.vaultTLSServerName) tls.serverName = parameters.vaultTLSServerName;
  if (parameters.vaultTLSClientCertPath) tls.certFile = parameters.vaultTLSClientCertPath;
  if (parameters.vaultTLSClientKeyPath) tls.keyFile = parameters.vaultTLSClientKeyPath;
  if (Object.keys(tls).length > 0) {
    store.tls = tls;
    c.attention.push('store tls: the files must be readable by the provider (mount them into the usp DaemonSet; relative paths resolve against the config file)');
  }
  if (parameters.vaultCADirectory) {
    c.attention.push('parameters.vaultCADirectory: no equivalent; concatenate the CA certificates into one PEM file for the store\'s tls.caFile');
  }
  if (isTrue(parameters.vaultSkipTLSVerify)) {
    c.attention.push('parameters.vaultSkipTLSVerify: no equivalent, TLS is always verified; give the store tls.caFile (and tls.serverName) instead');
  }
  const mount = (parameters.vaultAuthMountPath || parameters.vaultKubernetesMountPath || 'kubernetes').replace(/^\/+|\/+$/g, '').replace(/^auth\//, '');
  const audience = parameters.audience || 'vault';
  store.auth = { method: 'kubernetes', mount, audience };
  if (!parameters.audience) {
    c.notes.push('audience: vault-csi-provider presented a token for the API server\'s audience; this store presents one for "vault", so the Vault role needs audience=vault');
  }
  c.stores.push(store);
  c.audiences.push(audience);
  if (parameters.roleName) return { ...c, role: parameters.roleName };
  c.attention.push('parameters.roleName: not set; set the class parameter role, or the store\'s auth.role or auth.roleTemplate');
  return c;
}

// ---------------------------------------------------------------------------------------------
// aws/secrets-store-csi-driver-provider-aws

const awsParameters = ['objects', 'region', 'failoverRegion', 'usePodIdentity', 'pathTranslation', 'preferredAddressType'];
const awsObjectKeys = [
  'objectName',
  'objectType',
  'objectAlias',
  'objectVersion',
  'objectVersionLabel',
  'jmesPath',
  'failoverObject',
  'filePermission',
];
const awsBackends = { secretsmanager: 'aws-secrets-manager', ssmparameter: 'aws-parameter-store' } as const;
type AwsType = keyof typeof awsBackends;
const topLevelField = /^[A-Za-z_][A-Za-z0-9_]*$/;

function awsType(o: Plain, name: string): AwsType | undefined {
  const declared = text(o.objectType);
  if (declared === 'secretsmanager' || declared === 'ssmparameter') return declared;
  if (declared !== undefined) return undefined;
  if (/^arn:aws[a-z-]*:secretsmanager:/.test(name)) return 'secretsmanager';
  if (/^arn:aws[a-z-]*:ssm:/.test(name)) return 'ssmparameter';
  return undefined;
}

/** The AWS provider's file name: the alias, else the object name with `/` translated. */
function awsFileName(name: string, translation: string | undefined, at: string, c: Conversion): string {
  const resource = name.startsWith('arn:') ? name.replace(/^arn:[^:]*:[^:]*:[^:]*:[^:]*:(secret:|parameter\/)?/, '') : name;
  if (resource !== name) c.attention.push(`${at}: an ARN without objectAlias; the file is named "${resource}" here, check the name the pod expects`);
  const mode = translation === undefined || /^true$/i.test(translation) ? '_' : /^false$/i.test(translation) ? undefined : translation;
  const file = mode === undefined ? resource.replace(/^\/+/, '') : resource.replaceAll('/', mode);
  if (file !== resource && mode !== undefined) {
    c.notes.push(`${at}: pathTranslation turned "${resource}" into the file name "${file}", kept so the pod finds the same file`);
  }
  return file;
}

export function convertAws(parameters: Record<string, string>, storeName: string, role: string | undefined): Conversion {
  const c = emptyConversion();
  reportUnknown(parameters, awsParameters, c);
  const stores: Record<AwsType, string> = { secretsmanager: storeName, ssmparameter: `${storeName}-ssm` };
  const used = new Set<AwsType>();
  const vendorObjects = parseVendorObjects(parameters.objects, c);
  vendorObjects.forEach((o, i) => {
    const at = `objects[${i}]`;
    for (const key of Object.keys(o)) if (!awsObjectKeys.includes(key)) c.attention.push(`${at}.${key}: unknown field; not converted`);
    const ref = text(o.objectName);
    if (!ref) {
      c.problems.push(`${at}.objectName: missing`);
      return;
    }
    const type = awsType(o, ref);
    if (!type) {
      c.problems.push(`${at}.objectType: must be secretsmanager or ssmparameter (or objectName an ARN of either)`);
      return;
    }
    used.add(type);
    const base: OurObject = { store: stores[type], ref };
    const version = text(o.objectVersion);
    const label = text(o.objectVersionLabel);
    if (version !== undefined) base.version = version;
    if (label !== undefined) {
      if (type === 'secretsmanager') base.versionStage = label;
      else if (version === undefined) base.version = label;
      else c.attention.push(`${at}.objectVersionLabel: a parameter is pinned by version or label, not both; the label is left out`);
    }
    const alias = text(o.objectAlias);
    const name = alias ?? awsFileName(ref, parameters.pathTranslation, at, c);
    const mode = convertMode(o.filePermission, at, c);
    c.objects.push({ name, ...base, ...(mode !== undefined ? { mode } : {}) });
    if (o.jmesPath !== undefined) {
      if (!Array.isArray(o.jmesPath)) c.attention.push(`${at}.jmesPath: not a list; not converted`);
      else {
        o.jmesPath.forEach((entry: unknown, j) => {
          const path = isPlainObject(entry) ? text(entry.path) : undefined;
          const entryAlias = isPlainObject(entry) ? text(entry.objectAlias) : undefined;
          if (!path || !entryAlias) {
            c.problems.push(`${at}.jmesPath[${j}]: needs path and objectAlias`);
            return;
          }
          const pick = topLevelField.test(path) ? { key: path } : { select: path };
          c.objects.push({ name: entryAlias, ...base, ...pick, ...(mode !== undefined ? { mode } : {}) });
        });
      }
    }
    if (isPlainObject(o.failoverObject)) {
      const failoverName = text(o.failoverObject.objectName);
      if (failoverName !== undefined && failoverName !== ref && !sameResourceInOtherRegion(failoverName, ref)) {
        c.attention.push(`${at}.failoverObject: a failover object with another name (${failoverName}) has no equivalent; the store's failoverRegion reads the same ref there`);
      } else {
        c.notes.push(`${at}.failoverObject: not needed; the store's failoverRegion reads the same ref there`);
      }
    }
  });

  const region = parameters.region;
  if (!region) {
    c.attention.push('parameters.region: not set, so the AWS provider used the node\'s region; set the store region (a placeholder is shown)');
  }
  const podIdentity = isTrue(parameters.usePodIdentity);
  const auth: Plain = podIdentity ? { method: 'pod-identity' } : { method: 'irsa' };
  if (parameters.preferredAddressType?.toLowerCase() === 'ipv6') {
    if (podIdentity) auth.ipv6 = true;
    else c.notes.push('parameters.preferredAddressType: applies to Pod Identity only; ignored for IRSA');
  }
  for (const type of (['secretsmanager', 'ssmparameter'] as const).filter((t) => used.has(t))) {
    c.stores.push({
      name: stores[type],
      backend: awsBackends[type],
      region: region || 'us-east-1',
      ...(parameters.failoverRegion ? { failoverRegion: parameters.failoverRegion } : {}),
      auth: { ...auth },
    });
  }
  c.audiences.push(podIdentity ? 'pods.eks.amazonaws.com' : 'sts.amazonaws.com');
  if (parameters.pathTranslation !== undefined) {
    c.notes.push('parameters.pathTranslation: applied to the file names; names are paths here, so new objects can use / directly');
  }
  if (podIdentity) {
    if (role) c.notes.push('--role: Pod Identity stores take the role from the association; the role parameter is ignored');
    return c;
  }
  if (role) return { ...c, role };
  c.attention.push(
    'parameter role: IRSA here assumes the role the class names, not the service account\'s eks.amazonaws.com/role-arn annotation; set it to that ARN (or run with --role ARN)',
  );
  return { ...c, role: 'arn:aws:iam::111122223333:role/REPLACE-ME' };
}

function sameResourceInOtherRegion(a: string, b: string): boolean {
  const strip = (arn: string) => arn.replace(/^(arn:[^:]*:[^:]*:)[^:]*:/, '$1:');
  return a.startsWith('arn:') && b.startsWith('arn:') && strip(a) === strip(b);
}

// ---------------------------------------------------------------------------------------------
// Output

/** Each object on one line in flow style, like the examples in the docs. */
function renderObjects(objects: readonly OurObject[]): string {
  return objects
    .map((o) => {
      const doc = new Document(o);
      (doc.contents as { flow?: boolean }).flow = true;
      return `- ${doc.toString({ lineWidth: 0, flowCollectionPadding: false }).trimEnd()}\n`;
    })
    .join('');
}

function renderClass(vendor: VendorClass, c: Conversion, from: Vendor): string {
  const parameters: Plain = {};
  if (c.role !== undefined) parameters.role = c.role;
  parameters.objects = new Scalar(renderObjects(c.objects));
  (parameters.objects as Scalar).type = Scalar.BLOCK_LITERAL;
  const spec: Plain = { provider: 'universal', parameters };
  if (vendor.spec.secretObjects !== undefined) spec.secretObjects = vendor.spec.secretObjects;
  const doc = new Document({ apiVersion: vendor.apiVersion ?? 'secrets-store.csi.x-k8s.io/v1', kind: 'SecretProviderClass', metadata: vendor.metadata, spec });
  doc.commentBefore = ` Converted by usp migrate from a SecretProviderClass for provider ${from}.`;
  return doc.toString({ lineWidth: 0 });
}

function renderReport(name: string, from: Vendor, c: Conversion, out: string | undefined): string {
  const lines: string[] = [];
  lines.push(`converted ${name} from ${from}: ${c.objects.length} object${c.objects.length === 1 ? '' : 's'}${out ? `, written to ${out}` : ''}`);
  lines.push('');
  lines.push(`provider config (platform admin): add ${c.stores.length === 1 ? 'this store' : 'these stores'}`);
  lines.push(stringify({ stores: c.stores }, { lineWidth: 0 }).trimEnd());
  lines.push('');
  lines.push('CSIDriver (secrets-store-csi-driver Helm values): request the pod token the store logs in with');
  lines.push(stringify({ tokenRequests: c.audiences.map((audience) => ({ audience })) }).trimEnd());
  lines.push('');
  lines.push(c.attention.length > 0 ? 'needs attention:' : 'needs attention: nothing');
  for (const item of c.attention) lines.push(`  - ${item}`);
  if (c.notes.length > 0) {
    lines.push('');
    lines.push('differences (no action needed):');
    for (const note of c.notes) lines.push(`  - ${note}`);
  }
  return `${lines.join('\n')}\n`;
}
