/**
 * deploy/monitoring/alerts.yaml through Prometheus' own tooling: `promtool check rules` on the
 * PrometheusRule's groups, and `promtool test rules` with alerts.promtool.yaml (for each alert a
 * series that fires it and one that must not). Also: every alert has a runbook section that
 * states its threshold, and selects only metrics a running provider exports.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { alertGroups, alertRules, metricNames } from './promql.js';
import { promtool, promtoolMissing, runPromtool } from './promtool.js';
import { scrapeEveryOutcome } from './scrape.js';

const unitTests = new URL('./alerts.promtool.yaml', import.meta.url);
const guidePath = new URL('../../docs/troubleshooting.md', import.meta.url);
/** Series Prometheus makes itself for every target, not the provider. */
const prometheusSeries = new Set(['up']);

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-alerts-'));
  await writeFile(join(dir, 'alerts.rules.yaml'), stringify(alertGroups()));
  await copyFile(unitTests, join(dir, 'alerts.promtool.yaml'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!promtool)(`deploy/monitoring/alerts.yaml with promtool${promtool ? '' : ` (${promtoolMissing})`}`, () => {
  it('passes promtool check rules', async () => {
    const { code, output } = await runPromtool(['check', 'rules', 'alerts.rules.yaml'], { cwd: dir });
    expect(output).toContain('SUCCESS');
    expect(code, output).toBe(0);
  });

  it('passes its promtool unit tests', async () => {
    const { code, output } = await runPromtool(['test', 'rules', 'alerts.promtool.yaml'], { cwd: dir });
    expect(code, output).toBe(0);
  });

  it('has unit tests for every alert, each with a firing and a quiet series', async () => {
    const tests = (await readFile(unitTests, 'utf8')).split('\n');
    for (const { alert } of alertRules()) {
      // Each test lists exp_alerts exactly, so a firing case is one with an entry, a quiet series
      // one that is absent from it (or a case with none); both are asserted in the file.
      expect(tests.filter((l) => l.trim() === `alertname: ${alert}`).length, alert).toBeGreaterThan(0);
    }
  });
});

describe('the alerts', () => {
  it('are the ones issue #18 asks for', () => {
    expect(alertRules().map((r) => r.alert)).toEqual([
      'UspMountErrorsOutage',
      'UspMountErrorsRefused',
      'UspMountLatencyHigh',
      'UspStoreCircuitOpen',
      'UspStoreErrorsHigh',
      'UspStoreQueueWaitHigh',
      'UspConfigReloadRejected',
      'UspProviderDown',
      'UspProviderRestarting',
    ]);
  });

  it('keep refusals (an app team mistake) apart from outages', () => {
    const code = (alert: string) => /code=~"([^"]+)"/.exec(alertRules().find((r) => r.alert === alert)!.expr)![1]!.split('|');
    expect(code('UspMountErrorsRefused').sort()).toEqual(['InvalidArgument', 'NotFound', 'PermissionDenied']);
    expect(code('UspMountErrorsOutage').sort()).toEqual(['DeadlineExceeded', 'Internal', 'Unavailable']);
  });

  it('each have a severity, a summary and a runbook section that justifies the threshold', async () => {
    const guide = await readFile(guidePath, 'utf8');
    for (const rule of alertRules()) {
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.runbook_url, rule.alert).toBe(`docs/troubleshooting.md#${rule.alert.toLowerCase()}`);
      const start = guide.indexOf(`\n### ${rule.alert}\n`);
      expect(start, `docs/troubleshooting.md has a "### ${rule.alert}" section`).toBeGreaterThan(0);
      const section = guide.slice(start + 1, guide.indexOf('\n##', start + 1));
      expect(section, `the runbook of ${rule.alert} says why its threshold is what it is`).toMatch(/\*\*Threshold\*\*/);
    }
  });
});

describe('the alerts select only what a running provider exports', () => {
  let exported: Set<string>;

  beforeAll(async () => {
    exported = await scrapeEveryOutcome();
  });

  it.each(alertRules().map((r) => [r.alert, r.expr] as const))('%s', (_alert, expr) => {
    const names = [...metricNames(expr)];
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(exported.has(name) || prometheusSeries.has(name), `${name} is exported`).toBe(true);
  });
});
