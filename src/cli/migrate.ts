import { readFile, writeFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { isPlainObject } from '../util.js';
import { UsageError } from './class-file.js';
import { parseFlags, requireFlag, type Io } from './flags.js';
import { convertAws } from './migrate-aws.js';
import { convertAzure } from './migrate-azure.js';
import { convertGcp } from './migrate-gcp.js';
import type { Vendor, VendorClass } from './migrate-conversion.js';
import { renderClass, renderReport } from './migrate-output.js';
import { convertVault } from './migrate-vault.js';

export const migrateUsage = `usage: usp migrate --from vault|aws|gcp|azure --class VENDOR_SPC.yaml [--store NAME] [--role ARN] [--out FILE]
Converts a vault-csi-provider, AWS, GCP or Azure provider SecretProviderClass into one for this provider
and reports the store entry the provider config needs and anything without an equivalent. The
class goes to --out (else stdout, with the report on stderr). --store names the store (default
vault, gcp, azure, or aws and aws-ssm); --role fills the IAM role ARN of IRSA stores. Exit: 0 converted
(read the "needs attention" list), 1 not convertible, 2 usage.
`;

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
  if (from !== 'vault' && from !== 'aws' && from !== 'gcp' && from !== 'azure') throw new UsageError('--from: vault, aws, gcp or azure');
  const path = requireFlag(flags.class, 'class');
  const store = typeof flags.store === 'string' ? flags.store : undefined;
  if (store !== undefined && !/^[a-z0-9]([-a-z0-9]{0,57}[a-z0-9])?$/.test(store)) {
    throw new UsageError('--store: a DNS label (lowercase letters, digits, -) of at most 59 characters');
  }
  const vendor = await readVendorClass(path, from);
  const conversion =
    from === 'vault'
      ? convertVault(vendor.parameters, store ?? 'vault')
      : from === 'gcp'
        ? convertGcp(vendor.parameters, store ?? 'gcp')
        : from === 'azure'
          ? convertAzure(vendor.parameters, store ?? 'azure')
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

