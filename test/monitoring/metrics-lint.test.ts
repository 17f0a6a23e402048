/**
 * `promtool check metrics` (Prometheus' own lint of names, types, units and help texts) over a real
 * scrape of a running provider, after Mounts of every outcome, store failures, an open circuit and
 * config reloads, so that every metric with labels has samples. It must report nothing.
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/observability/metrics.js';
import { promtool, promtoolMissing, runPromtool } from './promtool.js';
import { exportedNames, mountEveryOutcome, scrape, startMonitoredProvider, type MonitoredProvider } from './scrape.js';

let p: MonitoredProvider;
let codes: Set<string>;
let exposition: string;

beforeAll(async () => {
  p = await startMonitoredProvider();
  codes = await mountEveryOutcome(p);
  exposition = await scrape(p);
});

afterAll(async () => {
  await p.stopAll();
});

describe('a scrape after Mounts of every outcome', () => {
  it('saw each outcome and code it was meant to', () => {
    const expected = ['OK', 'NOT_FOUND', 'INVALID_ARGUMENT', 'PERMISSION_DENIED', 'UNAVAILABLE', 'DEADLINE_EXCEEDED'];
    const seen = [...codes].map((c) => (c === 'OK' ? c : status[Number(c)]));
    expect(seen.sort()).toEqual(expected.sort());
    for (const code of ['OK', 'NotFound', 'InvalidArgument', 'PermissionDenied', 'Unavailable', 'DeadlineExceeded']) {
      expect(exposition).toMatch(new RegExp(`^usp_mount_requests_total\\{outcome="(ok|error)",code="${code}"\\} [1-9]`, 'm'));
    }
    expect(exposition).toMatch(/^usp_store_circuit_state\{store="down"\} 2$/m);
    expect(exposition).toMatch(/^usp_config_reloads_total\{outcome="rejected"\} 1$/m);
    expect(exposition).toMatch(/^usp_config_reloads_total\{outcome="applied"\} 1$/m);
  });

  it('exports exactly the metrics `usp serve` registers (createMetrics with the process metrics)', () => {
    const registered = new Set(createMetrics().registry.getMetricsAsArray().map((m) => m.name));
    const declared = new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    expect([...declared].sort()).toEqual([...registered].sort());
    expect(exportedNames(exposition).has('usp_mount_duration_seconds_bucket')).toBe(true);
  });
});

describe.skipIf(!promtool)(`promtool check metrics${promtool ? '' : ` (${promtoolMissing})`}`, () => {
  it('finds nothing in the scrape', async () => {
    const { code, output } = await runPromtool(['check', 'metrics'], { input: exposition });
    expect(output).toBe('');
    expect(code).toBe(0);
  });

  it('flags what it should (the lint is real): a gauge named _total, a counter without _total', async () => {
    const bad = '# HELP usp_x_total X.\n# TYPE usp_x_total gauge\nusp_x_total 1\n# HELP usp_y Y.\n# TYPE usp_y counter\nusp_y 1\n';
    const { code, output } = await runPromtool(['check', 'metrics'], { input: bad });
    expect(code).not.toBe(0);
    expect(output).toContain('usp_x_total non-counter metrics should not have "_total" suffix');
    expect(output).toContain('usp_y counter metrics should have "_total" suffix');
  });
});
