/**
 * A real scrape: Debian's Prometheus on loopback scrapes a provider under test and evaluates
 * deploy/monitoring/alerts.yaml. Mounts against a store that is down open its circuit, and the
 * circuit alert's expression, asked through Prometheus' HTTP API, returns that store; every
 * dashboard expression is evaluated by Prometheus without an error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driverRequest } from '../helpers/driver-client.js';
import { alertGroups, alertRules, dashboardQueries, loadDashboard } from './promql.js';
import { prometheusBin, startPrometheus, type RunningPrometheus } from './prometheus.js';
import { startMonitoredProvider, type MonitoredProvider } from './scrape.js';

const missing = 'prometheus is not installed (apt-get install prometheus): the real-scrape test is skipped';
if (!prometheusBin) console.warn(missing);

/** Polls `check` until it returns something, for up to `ms`. */
async function eventually<T>(check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe.skipIf(!prometheusBin)(`Prometheus scraping a provider${prometheusBin ? '' : ` (${missing})`}`, () => {
  let p: MonitoredProvider;
  let prometheus: RunningPrometheus;
  const circuitExpr = alertRules().find((r) => r.alert === 'UspStoreCircuitOpen')!.expr;

  beforeAll(async () => {
    p = await startMonitoredProvider();
    prometheus = await startPrometheus(p.httpAddress, alertGroups());
  }, 30_000);

  afterAll(async () => {
    await prometheus?.stop();
    await p?.stopAll();
  });

  it('scrapes the provider', async () => {
    const up = await eventually(async () => (await prometheus.query('up')).data?.result[0]);
    expect(up.metric).toMatchObject({ job: 'universal-secrets-provider-metrics', namespace: 'usp-system' });
    expect(up.value[1]).toBe('1');
  });

  it('returns the store from the circuit alert once Mounts opened its circuit', async () => {
    expect((await prometheus.query(circuitExpr)).data?.result).toEqual([]);
    for (let i = 0; i < 3; i++) await p.client.mountError(driverRequest('- {name: db, ref: secret/data/shop/db, store: down}', p.pod), 10_000);
    const open = await eventually(async () => {
      const result = (await prometheus.query(circuitExpr)).data?.result ?? [];
      return result.length > 0 ? result : undefined;
    });
    expect(open.map((r) => r.metric)).toEqual([{ namespace: 'usp-system', store: 'down' }]);
    const alert = await eventually(async () => (await prometheus.alerts()).find((a) => a.labels.alertname === 'UspStoreCircuitOpen'));
    expect(alert.labels).toMatchObject({ store: 'down', severity: 'critical' });
    expect(alert.state).toBe('pending');
  });

  it('evaluates every dashboard expression without an error', async () => {
    const fill = (expr: string) =>
      expr.replaceAll('$__rate_interval', '1m').replaceAll('$namespace', 'usp-system').replaceAll('$store', '.*');
    for (const { where, expr } of dashboardQueries(loadDashboard())) {
      const answer = await prometheus.query(fill(expr));
      expect(answer.status, `${where}: ${answer.error ?? ''}`).toBe('success');
    }
  });
});
