import { convertMode, emptyConversion, isTrue, parseVendorObjects, reportUnknown, text, type Conversion, type OurObject, type Plain } from './migrate-conversion.js';

// Converts a class of Azure/secrets-store-csi-driver-provider-azure.

const azureParameters = [
  'objects',
  'keyvaultName',
  'tenantId',
  'tenantID',
  'clientID',
  'cloudName',
  'usePodIdentity',
  'useVMManagedIdentity',
  'userAssignedIdentityID',
  'cloudEnvFileName',
];
const azureObjectKeys = ['objectName', 'objectType', 'objectAlias', 'objectVersion', 'objectFormat', 'objectEncoding', 'filePermission', 'objectVersionHistory'];
const clouds: Record<string, string> = { '': 'public', azurepubliccloud: 'public', azureusgovernmentcloud: 'usgov', azureusgovernment: 'usgov', azurechinacloud: 'china' };

export function convertAzure(parameters: Record<string, string>, storeName: string): Conversion {
  const c = emptyConversion();
  reportUnknown(parameters, azureParameters, c);
  // The Azure provider wraps its objects as `array:` of one-object YAML strings.
  parseVendorObjects(parameters.objects, c, 'array').forEach((o, i) => convertObject(o, `objects[${i}]`, storeName, c));
  const store = storeEntry(parameters, storeName, c);
  if (store) c.stores.push(store);
  if (c.objects.some((o) => o.kind === undefined && o.format === undefined)) {
    c.notes.push('certificate-backed secrets are written as the PKCS#8 key, then leaf, intermediates and root, as the Azure provider does; format pem-pair gives the certificate and the key apart');
  }
  c.audiences.push('api://AzureADTokenExchange');
  convertIdentity(parameters, c);
  return c;
}

function convertObject(o: Plain, at: string, storeName: string, c: Conversion): void {
  for (const key of Object.keys(o)) if (!azureObjectKeys.includes(key)) c.attention.push(`${at}.${key}: unknown field; not converted`);
  const ref = text(o.objectName);
  if (!ref) {
    c.problems.push(`${at}.objectName: missing`);
    return;
  }
  const type = (text(o.objectType) ?? '').toLowerCase();
  if (type !== 'secret' && type !== 'key' && type !== 'cert') {
    c.problems.push(`${at}.objectType: must be secret, key or cert`);
    return;
  }
  const object: OurObject = { name: text(o.objectAlias) ?? ref, store: storeName, ref };
  if (type !== 'secret') object.kind = type;
  const version = text(o.objectVersion);
  if (version !== undefined && version.toLowerCase() !== 'latest') object.version = version;
  const format = (text(o.objectFormat) ?? '').toLowerCase();
  const encoding = (text(o.objectEncoding) ?? '').toLowerCase();
  if (format === 'pfx') {
    object.format = 'pfx';
    if (encoding !== 'base64') {
      c.attention.push(`${at}.objectFormat: pfx without objectEncoding base64 wrote the PFX as base64 text; format pfx here writes the PFX bytes (what objectEncoding base64 gave): check what the pod reads`);
    }
  } else if (format !== '' && format !== 'pem') {
    c.attention.push(`${at}.objectFormat: ${JSON.stringify(format)} is not pem or pfx; left out`);
  } else if (encoding === 'base64' || encoding === 'hex') {
    object.decode = encoding;
  }
  if (encoding !== '' && !['utf-8', 'utf8', 'base64', 'hex'].includes(encoding)) c.attention.push(`${at}.objectEncoding: ${JSON.stringify(encoding)} is not utf-8, base64 or hex; left out`);
  const mode = convertMode(o.filePermission, at, c);
  if (mode !== undefined) object.mode = mode;
  if (o.objectVersionHistory !== undefined) {
    c.attention.push(`${at}.objectVersionHistory: no equivalent (it wrote the last N versions as files); list each version as its own object with version`);
  }
  c.objects.push(object);
}

function storeEntry(parameters: Record<string, string>, storeName: string, c: Conversion): Plain | undefined {
  const vaultName = parameters.keyvaultName;
  const tenantId = parameters.tenantId ?? parameters.tenantID;
  if (!vaultName) c.problems.push('parameters.keyvaultName: missing');
  if (!tenantId) c.problems.push('parameters.tenantId: missing (or tenantID)');
  const cloudName = (parameters.cloudName ?? '').trim();
  const cloud = clouds[cloudName.toLowerCase()];
  if (cloud === undefined) {
    c.attention.push(`parameters.cloudName: ${JSON.stringify(cloudName)} has no preset; set the store's vaultUrl and authorityHost to that cloud's endpoints`);
  }
  if (parameters.cloudEnvFileName !== undefined) c.attention.push('parameters.cloudEnvFileName: no equivalent; set the store\'s vaultUrl and authorityHost instead');
  if (!vaultName || !tenantId) return undefined;
  const clientId = parameters.clientID;
  if (!clientId) c.attention.push('parameters.clientID: not set; set the store\'s clientId to the application (client) id the pods federate with');
  return {
    name: storeName,
    backend: 'azure-key-vault',
    vaultName,
    ...(cloud !== undefined && cloud !== 'public' ? { cloud } : {}),
    tenantId,
    clientId: clientId || '00000000-0000-0000-0000-000000000000',
  };
}

function convertIdentity(parameters: Record<string, string>, c: Conversion): void {
  if (isTrue(parameters.usePodIdentity)) {
    c.attention.push('parameters.usePodIdentity: AAD pod identity has no equivalent (and is retired); add a federated identity credential for the pod\'s service account (docs/azure.md)');
  }
  if (isTrue(parameters.useVMManagedIdentity) || parameters.userAssignedIdentityID) {
    c.attention.push('parameters.useVMManagedIdentity: the node\'s managed identity has no equivalent; the store reads as the pod through workload identity, so federate a managed identity or application with the pod\'s service account');
  }
  if (parameters.clientID) {
    c.notes.push('parameters.clientID: the store\'s clientId; classes that need another application name it in their role parameter, allowed by the store\'s allowedClientIds');
  }
}
