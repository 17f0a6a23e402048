import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/observability/metrics.js';
import { generateMetricsDoc, metricsDocPath } from './metrics-doc.js';

const generated = generateMetricsDoc();

describe('docs/metrics.md', () => {
  it('is what the registered metrics, the alerts and the dashboard generate', async () => {
    if (process.env.USP_WRITE_METRICS_DOC === '1') await writeFile(metricsDocPath, generated);
    const committed = await readFile(metricsDocPath, 'utf8').catch(() => '');
    if (committed !== generated) {
      const a = committed.split('\n');
      const b = generated.split('\n');
      const line = a.findIndex((l, i) => l !== b[i]);
      expect.fail(
        'docs/metrics.md is stale: run USP_WRITE_METRICS_DOC=1 npx vitest run test/monitoring/metrics-doc.test.ts ' +
          `(first difference at line ${line + 1}: ${JSON.stringify(a[line] ?? '')} vs ${JSON.stringify(b[line] ?? '')})`,
      );
    }
  });

  it('has a row with type, labels and meaning for every metric the provider registers', () => {
    for (const metric of createMetrics().registry.getMetricsAsArray()) {
      const row = generated.split('\n').find((l) => l.startsWith(`| \`${metric.name}\` |`));
      expect(row, metric.name).toBeDefined();
      expect(row).toContain(` | ${(metric as unknown as { type: string }).type} | `);
      expect(row).toContain((metric as unknown as { help: string }).help.replaceAll('|', '\\|'));
    }
  });

  it('names the alerts and panels that use a metric', () => {
    const row = generated.split('\n').find((l) => l.startsWith('| `usp_store_circuit_state` |'))!;
    expect(row).toContain('[UspStoreCircuitOpen](troubleshooting.md#uspstorecircuitopen)');
    expect(row).toContain('Stores: Circuit breaker');
    const histogram = generated.split('\n').find((l) => l.startsWith('| `usp_mount_duration_seconds` |'))!;
    expect(histogram).toContain('`outcome`, `le`');
    expect(histogram).toContain('UspMountLatencyHigh');
  });
});
