/**
 * The CI dependency audit (scripts/audit.mjs), driven with saved `npm audit --json` reports in
 * npm's own format: it fails on a high or critical advisory, not on lower ones, honours a listed
 * exception with its reason, and tells an unreachable audit service apart from a clean result.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../scripts/audit.mjs', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-audit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const advisory = (severity: string, id: string) => ({
  source: 1_100_000,
  name: 'form-data',
  dependency: 'form-data',
  title: 'form-data uses unsafe random function in form-data for choosing boundary',
  url: `https://github.com/advisories/${id}`,
  severity,
  cwe: ['CWE-330'],
  range: '>=4.0.0 <4.0.4',
});

function report(severity: string | undefined, id = 'GHSA-fjxv-7rqg-78g4') {
  const vulnerabilities = severity
    ? {
        'form-data': { name: 'form-data', severity, isDirect: false, via: [advisory(severity, id)], effects: ['@kubernetes/client-node'], range: '4.0.0 - 4.0.3', nodes: ['node_modules/form-data'], fixAvailable: true },
        '@kubernetes/client-node': { name: '@kubernetes/client-node', severity, isDirect: true, via: ['form-data'], effects: [], range: '*', nodes: ['node_modules/@kubernetes/client-node'], fixAvailable: true },
      }
    : {};
  const counts = { info: 0, low: 0, moderate: 0, high: 0, critical: 0, total: severity ? 2 : 0 };
  return { auditReportVersion: 2, vulnerabilities, metadata: { vulnerabilities: counts, dependencies: { prod: 155, dev: 310, optional: 0, peer: 0, peerOptional: 0, total: 465 } } };
}

async function audit(body: unknown, options: { exceptions?: unknown; env?: Record<string, string> } = {}) {
  const reportFile = join(dir, `report-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(reportFile, JSON.stringify(body));
  const exceptionsFile = join(dir, `exceptions-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(exceptionsFile, JSON.stringify(options.exceptions ?? []));
  const run = spawnSync(process.execPath, [script, '--report', reportFile, '--exceptions', exceptionsFile], {
    encoding: 'utf8',
    env: { ...process.env, USP_AUDIT_REQUIRED: '', ...options.env },
  });
  return { code: run.status, out: `${run.stdout}${run.stderr}` };
}

describe('scripts/audit.mjs', () => {
  it('passes a report without advisories', async () => {
    const r = await audit(report(undefined));
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('0 high or critical advisories');
  });

  it.each(['high', 'critical'])('fails on a %s advisory and names the package and advisory', async (severity) => {
    const r = await audit(report(severity));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`FAIL\\s+${severity}\\s+form-data`));
    expect(r.out).toContain('GHSA-fjxv-7rqg-78g4');
  });

  it.each(['low', 'moderate'])('does not fail on a %s advisory', async (severity) => {
    const r = await audit(report(severity));
    expect(r.code, r.out).toBe(0);
  });

  it('honours an exception that names the advisory and gives a reason, and only that one', async () => {
    const exceptions = [{ advisory: 'GHSA-fjxv-7rqg-78g4', reason: 'form-data only builds multipart bodies, which the provider never sends' }];
    expect((await audit(report('critical'), { exceptions })).code).toBe(0);
    expect((await audit(report('critical', 'GHSA-aaaa-bbbb-cccc'), { exceptions })).code).toBe(1);
    const r = await audit(report('critical'), { exceptions: [{ advisory: 'GHSA-fjxv-7rqg-78g4', reason: ' ' }] });
    expect(r.code).toBe(1);
    expect(r.out).toContain('non-empty "reason"');
  });

  it('says when the audit service cannot be reached, and fails then only where the audit is required', async () => {
    const unreachable = { message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk', statusCode: 405, body: '', error: { summary: '', detail: '' } };
    const lenient = await audit(unreachable);
    expect(lenient.code).toBe(0);
    expect(lenient.out).toContain('could not be reached (405 Method Not Allowed');
    const strict = await audit(unreachable, { env: { USP_AUDIT_REQUIRED: '1' } });
    expect(strict.code).toBe(1);
    expect(strict.out).toContain('failing');
  });
});
