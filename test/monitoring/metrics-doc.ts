import { createMetrics } from '../../src/observability/metrics.js';
import { alertRules, dashboardPanels, loadDashboard, metricNames } from './promql.js';

export const metricsDocPath = new URL('../../docs/metrics.md', import.meta.url);

interface Described {
  name: string;
  type: string;
  labels: string[];
  help: string;
}

function describeRegistry(defaultMetrics: boolean): Described[] {
  return createMetrics({ defaultMetrics }).registry.getMetricsAsArray().map((m) => {
    const metric = m as unknown as { name: string; type: string; help: string; labelNames?: readonly string[] };
    const labels = [...(metric.labelNames ?? [])];
    return { name: metric.name, type: metric.type, labels: metric.type === 'histogram' ? [...labels, 'le'] : labels, help: metric.help };
  });
}

/** The sample names one metric produces in an exposition. */
function sampleNames({ name, type }: Described): string[] {
  return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
}

/** Alerts and dashboard panels per sample name, read from deploy/monitoring. */
function usersByName(): { alerts: Map<string, string[]>; panels: Map<string, string[]> } {
  const add = (map: Map<string, string[]>, name: string, user: string) => {
    const users = map.get(name) ?? [];
    if (!users.includes(user)) map.set(name, [...users, user]);
  };
  const alerts = new Map<string, string[]>();
  for (const rule of alertRules()) for (const name of metricNames(rule.expr)) add(alerts, name, rule.alert);
  const panels = new Map<string, string[]>();
  let row = '';
  for (const panel of dashboardPanels(loadDashboard())) {
    if (panel.type === 'row') row = panel.title;
    for (const target of panel.targets ?? []) for (const name of metricNames(target.expr)) add(panels, name, `${row}: ${panel.title}`);
  }
  return { alerts, panels };
}

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

function table(metrics: Described[]): string {
  const { alerts, panels } = usersByName();
  const users = (map: Map<string, string[]>, m: Described) => [...new Set(sampleNames(m).flatMap((n) => map.get(n) ?? []))];
  const rows = metrics.map((m) => {
    const labels = m.labels.map((l) => `\`${l}\``).join(', ');
    const alertList = users(alerts, m).map((a) => `[${a}](troubleshooting.md#${a.toLowerCase()})`).join(', ');
    return `| \`${m.name}\` | ${m.type} | ${labels} | ${cell(m.help)} | ${alertList} | ${cell(users(panels, m).join('; '))} |`;
  });
  return ['| metric | type | labels | meaning | alerts | dashboard panels |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

/** docs/metrics.md, from the metrics `usp serve` registers and the alerts and dashboard in deploy/monitoring. */
export function generateMetricsDoc(): string {
  const own = describeRegistry(false);
  const ownNames = new Set(own.map((m) => m.name));
  const process = describeRegistry(true).filter((m) => !ownNames.has(m.name));
  return `# Metrics

<!-- Generated from the metrics the provider registers (src/observability/metrics.ts) and from
deploy/monitoring by test/monitoring/metrics-doc.ts: do not edit by hand. Regenerate with
USP_WRITE_METRICS_DOC=1 npx vitest run test/monitoring/metrics-doc.test.ts -->

Every provider serves these on \`/metrics\` of its HTTP address (\`USP_HTTP_ADDR\`, port 8095 in
deploy/base). Labels are low-cardinality by construction: a store's name, a backend kind, an
outcome or an error code, never a ref, a pod or a value. The alerts are in
[deploy/monitoring/alerts.yaml](../deploy/monitoring/alerts.yaml) with runbooks in
[troubleshooting.md](troubleshooting.md#14-alerts); the panels are in
[deploy/monitoring/dashboard.json](../deploy/monitoring/dashboard.json). Prometheus adds the
target's labels (\`namespace\`, \`pod\`, \`instance\`, \`job\`) when it scrapes.

## Provider metrics

${table(own)}

A metric with labels has a series only once something set it: a store that never failed has no
\`outcome="Unavailable"\` series, and a circuit that never changed state has no
\`usp_store_circuit_state\` series. A series is born at its first value, which \`rate()\` and
\`increase()\` do not count; the alerts allow for it where a single event matters.

## Process and Node.js metrics

The defaults of prom-client, prefixed \`usp_\`.

${table(process)}

## Checked by Prometheus' lint

\`test/monitoring/metrics-lint.test.ts\` scrapes a running provider after Mounts of every outcome and
runs \`promtool check metrics\` on the answer, which must report nothing. Of prom-client's defaults
it flags three gauges named \`_total\` (only counters may end in \`_total\`):
\`usp_nodejs_active_handles_total\`, \`usp_nodejs_active_requests_total\` and
\`usp_nodejs_active_resources_total\`. The provider drops them rather than renaming them: each is
the sum of the gauge of the same name without \`_total\`, which has a \`type\` label, so
\`sum(usp_nodejs_active_handles)\` gives the same number, and renaming would have forked prom-client's
well-known names for no gain.
`;
}
