// Fails when a production dependency has a known high or critical advisory that is not listed,
// with its reason, in audit-exceptions.json. Reads `npm audit --omit=dev --json`, or a saved
// report given with --report FILE (how the tests drive it).
//
// Where the registry's audit service cannot be reached (some closed networks answer 405), this
// says so and exits 0, unless USP_AUDIT_REQUIRED=1: a CI that can reach the service sets it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const failing = new Set(['high', 'critical']);

function readReport(args) {
  const at = args.indexOf('--report');
  if (at >= 0) return readFileSync(args[at + 1], 'utf8');
  const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (run.error) throw run.error;
  return run.stdout;
}

function readExceptions(path) {
  let list;
  try {
    list = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT') return new Map();
    throw new Error(`${path}: ${err.message}`);
  }
  const byAdvisory = new Map();
  for (const [i, e] of list.entries()) {
    if (typeof e?.advisory !== 'string' || typeof e?.reason !== 'string' || e.reason.trim() === '') {
      throw new Error(`${path}[${i}]: needs "advisory" (a GHSA id or URL) and a non-empty "reason"`);
    }
    byAdvisory.set(e.advisory, e.reason);
  }
  return byAdvisory;
}

/** The advisories behind each vulnerable package (npm's report lists them under `via`). */
function findings(report) {
  const out = [];
  for (const [name, vuln] of Object.entries(report.vulnerabilities ?? {})) {
    for (const via of vuln.via ?? []) {
      if (typeof via !== 'object') continue; // a package name: reported under that package itself
      out.push({ name, severity: via.severity, title: via.title, url: via.url, range: via.range });
    }
  }
  return out;
}

const args = process.argv.slice(2);
const text = readReport(args);
let report;
try {
  report = JSON.parse(text);
} catch {
  console.error('audit: npm audit printed no JSON report');
  process.exit(1);
}
if (report.vulnerabilities === undefined) {
  const why = report.message ?? report.error?.summary ?? 'no report';
  const required = process.env.USP_AUDIT_REQUIRED === '1';
  console.error(`audit: the registry's audit service could not be reached (${why}); ${required ? 'failing' : 'skipped'}`);
  process.exit(required ? 1 : 0);
}
const exceptionsAt = args.indexOf('--exceptions');
const exceptions = readExceptions(exceptionsAt >= 0 ? args[exceptionsAt + 1] : new URL('../audit-exceptions.json', import.meta.url));
const serious = findings(report).filter((f) => failing.has(f.severity));
const open = serious.filter((f) => !exceptions.has(f.url) && !exceptions.has(f.url?.split('/').at(-1)));
for (const f of serious) {
  const excused = !open.includes(f);
  console.log(`${excused ? 'excepted' : 'FAIL'}  ${f.severity}  ${f.name} ${f.range ?? ''}  ${f.title ?? ''}  ${f.url ?? ''}`);
}
const counted = report.metadata?.dependencies?.total ?? report.metadata?.dependencies?.prod ?? '?';
console.log(`audit: ${counted} production dependencies, ${serious.length} high or critical advisories, ${open.length} without an exception`);
process.exit(open.length === 0 ? 0 : 1);
