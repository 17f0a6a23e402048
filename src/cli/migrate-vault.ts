import { isPlainObject } from '../util.js';
import { convertMode, emptyConversion, isTrue, parseVendorObjects, reportUnknown, text, type Conversion, type OurObject, type Plain } from './migrate-conversion.js';

// Converts a class of hashicorp/vault-csi-provider.

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
