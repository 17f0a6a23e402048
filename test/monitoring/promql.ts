import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export const alertsPath = new URL('../../deploy/monitoring/alerts.yaml', import.meta.url);
export const dashboardPath = new URL('../../deploy/monitoring/dashboard.json', import.meta.url);

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

/** The PrometheusRule's `spec`: what Prometheus itself loads as a rules file. */
export function alertGroups(): { groups: RuleGroup[] } {
  const rule = parseYaml(readFileSync(alertsPath, 'utf8')) as { spec: { groups: RuleGroup[] } };
  return rule.spec;
}

export function alertRules(): AlertRule[] {
  return alertGroups().groups.flatMap((g) => g.rules);
}

export interface DashboardQuery {
  /** Where it is: the panel title and refId, or the template variable. */
  where: string;
  /** PromQL with Grafana's variables still in it. */
  expr: string;
}

type Json = Record<string, any>;

export function loadDashboard(): Json {
  return JSON.parse(readFileSync(dashboardPath, 'utf8')) as Json;
}

/** Every panel of the dashboard, rows' collapsed panels included. */
export function dashboardPanels(dashboard: Json): Json[] {
  return (dashboard.panels as Json[]).flatMap((p) => [p, ...((p.panels as Json[] | undefined) ?? [])]);
}

/** Every PromQL expression: panel targets, and the selectors inside template variables' label_values(). */
export function dashboardQueries(dashboard: Json): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  for (const panel of dashboardPanels(dashboard)) {
    for (const target of (panel.targets as Json[] | undefined) ?? []) queries.push({ where: `panel "${panel.title}" ${target.refId}`, expr: target.expr });
  }
  for (const variable of dashboard.templating.list as Json[]) {
    if (variable.type !== 'query') continue;
    const text = typeof variable.query === 'string' ? variable.query : variable.query.query;
    const inner = /^label_values\((.+),\s*[a-zA-Z_]\w*\)$/.exec(text);
    if (!inner) throw new Error(`variable ${variable.name}: expected label_values(SELECTOR, LABEL), got ${text}`);
    queries.push({ where: `variable ${variable.name}`, expr: inner[1]! });
  }
  return queries;
}

/** Grafana's variables replaced by values of the right kind, so that Prometheus can parse the text. */
export function withVariablesFilled(expr: string): string {
  return expr
    .replace(/\$\{?__(rate_interval|interval|range)\}?/g, '5m')
    .replace(/\$\{?[a-zA-Z_]\w*(:\w+)?\}?/g, 'x');
}

const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects. A small lexer, not a parser (Prometheus parses the
 * expressions in the tests): strings, label matchers, ranges and grouping clauses are removed, and
 * what is left that is neither a function call, a keyword nor a number is a metric name.
 */
export function metricNames(expr: string): Set<string> {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[a-zA-Z_:][\w:]*|\d[\w.]*/g)) {
    const token = match[0];
    if (/^\d/.test(token) || keywords.has(token.toLowerCase())) continue;
    const rest = stripped.slice(match.index + token.length);
    if (/^\s*\(/.test(rest)) continue;
    names.add(token);
  }
  return names;
}
