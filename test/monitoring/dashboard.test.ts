/**
 * deploy/monitoring/dashboard.json: the rows and template variables issue #18 lists, every PromQL
 * expression parsed by Prometheus' own parser (emitted as recording rules for `promtool check
 * rules`), and every metric it selects exported by a running provider (a real /metrics scrape).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { dashboardPanels, dashboardQueries, loadDashboard, metricNames, withVariablesFilled } from './promql.js';
import { promtool, promtoolMissing, runPromtool } from './promtool.js';
import { scrapeEveryOutcome } from './scrape.js';

const dashboard = loadDashboard();
const queries = dashboardQueries(dashboard);
const panels = dashboardPanels(dashboard).filter((p) => p.type !== 'row');

describe('the dashboard', () => {
  it('has the rows issue #18 lists, each with panels', () => {
    const rows = (dashboard.panels as Array<Record<string, any>>).filter((p) => p.type === 'row');
    expect(rows.map((r) => r.title)).toEqual(['Mounts', 'Stores', 'Cache', 'Process', 'Config reloads']);
    const titles = panels.map((p) => p.title);
    for (const title of [
      'Mounts by outcome and code',
      'Mount latency',
      'Store calls by outcome',
      'Store error ratio',
      'Store call latency',
      'Retries',
      'Circuit breaker',
      'Queue wait',
      'Cache hit ratio',
      'Coalesced calls',
      'Stale served',
      'Evictions',
      'Resident memory',
      'V8 heap',
      'Event-loop lag',
      'Restarts',
      'Config reloads by outcome',
    ]) {
      expect(titles).toContain(title);
    }
  });

  it('has template variables for the datasource, the namespace of the DaemonSet and the store', () => {
    const variables = new Map((dashboard.templating.list as Array<Record<string, any>>).map((v) => [v.name, v]));
    expect([...variables.keys()]).toEqual(['datasource', 'namespace', 'store']);
    expect(variables.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(variables.get('store')).toMatchObject({ multi: true, includeAll: true });
    for (const { expr } of queries) expect(expr, expr).toMatch(/namespace="\$namespace"|^usp_process_start_time_seconds$/);
  });

  it('queries the chosen datasource and store in every panel', () => {
    for (const panel of panels) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets) {
        expect(target.datasource, panel.title).toEqual(panel.datasource);
        if (/store/.test(target.expr)) expect(target.expr, panel.title).toContain('store=~"$store"');
      }
    }
  });

  it('has unique panel ids and a description on every panel', () => {
    const ids = dashboardPanels(dashboard).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of panels) expect(panel.description, panel.title).toBeTruthy();
  });
});

describe.skipIf(!promtool)(`dashboard expressions through Prometheus' parser${promtool ? '' : ` (${promtoolMissing})`}`, () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'usp-dashboard-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('parses every expression (promtool check rules on them as recording rules)', async () => {
    const rules = queries.map((q, i) => ({ record: `usp:dashboard_query:${i}`, expr: withVariablesFilled(q.expr) }));
    await writeFile(join(dir, 'dashboard.rules.yaml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
    const { code, output } = await runPromtool(['check', 'rules', 'dashboard.rules.yaml'], { cwd: dir });
    expect(code, output).toBe(0);
    expect(output).toContain(`SUCCESS: ${queries.length} rules found`);
  });

  it('would reject a broken expression (the check is real)', async () => {
    const rules = [{ record: 'usp:broken', expr: withVariablesFilled('sum by (store (rate(usp_store_retries_total[$__rate_interval]))') }];
    await writeFile(join(dir, 'broken.rules.yaml'), stringify({ groups: [{ name: 'broken', rules }] }));
    const { code, output } = await runPromtool(['check', 'rules', 'broken.rules.yaml'], { cwd: dir });
    expect(code).not.toBe(0);
    expect(output).toMatch(/parse error/);
  });
});

describe('dashboard metrics', () => {
  let exported: Set<string>;

  beforeAll(async () => {
    exported = await scrapeEveryOutcome();
  });

  it('finds the metric names of an expression', () => {
    expect([...metricNames('sum by (store) (rate(usp_a_total{store=~"$store", x="y(z)"}[5m])) / on (store) group_left max(usp_b offset 5m) > 0.5')]).toEqual([
      'usp_a_total',
      'usp_b',
    ]);
    expect([...metricNames('histogram_quantile(0.99, sum by (le) (rate(usp_c_bucket[1m]))) and up == 1e3')]).toEqual(['usp_c_bucket', 'up']);
  });

  it.each(queries.map((q) => [q.where, q.expr] as const))('%s uses only exported metrics', (_where, expr) => {
    const names = [...metricNames(expr)];
    expect(names.length, 'selects a metric').toBeGreaterThan(0);
    for (const name of names) expect(exported.has(name), `${name} is exported by the provider`).toBe(true);
  });
});
