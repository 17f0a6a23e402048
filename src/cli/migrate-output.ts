import { Document, Scalar, stringify } from 'yaml';
import type { Conversion, OurObject, Plain, Vendor, VendorClass } from './migrate-conversion.js';

// What `usp migrate` writes: our class, and the report for the platform admin.

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

export function renderClass(vendor: VendorClass, c: Conversion, from: Vendor): string {
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

export function renderReport(name: string, from: Vendor, c: Conversion, out: string | undefined): string {
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
