import { isPlainObject } from '../util.js';
import { convertMode, emptyConversion, isTrue, parseVendorObjects, reportUnknown, text, type Conversion, type OurObject, type Plain } from './migrate-conversion.js';

// Converts a class of aws/secrets-store-csi-driver-provider-aws.

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
