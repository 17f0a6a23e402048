/**
 * A protocol-faithful AWS test endpoint: Secrets Manager and SSM Parameter Store over the JSON 1.1
 * protocol, STS AssumeRoleWithWebIdentity over the query protocol (form body, XML answers and XML
 * errors), and the EKS Pod Identity agent. Every Secrets Manager and SSM request must carry a valid
 * SigV4 signature made with credentials this server issued (or static keys it created); the
 * signature is recomputed from the canonical request, and failures get AWS's own error types.
 * One plain-HTTP listener per region; all share one state, so secrets can be replicated.
 *
 * Small API:
 *   const aws = await startAwsTestServer({ regions: ['us-east-1', 'us-west-2'] });
 *   aws.endpoint('us-east-1'); aws.stsUrl; aws.podIdentityUrl;     // http://127.0.0.1:<port>[/v1/credentials]
 *   aws.defineRole({ name: 'shop', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['shop/*'] });
 *   aws.associatePodIdentity({ namespace: 'shop', serviceAccount: 'app', role: 'shop' });
 *   aws.createAccessKey({ user: 'ci', allow: ['*'] });           // static keys
 *   aws.putSecret('shop/db', 'value' | Buffer, { stages?, regions? }) -> { versionId, arn(region) }
 *   aws.putParameter('/shop/x', 'v', { type?: 'SecureString', labels? }) -> version
 *   aws.deleteSecret('shop/db'); aws.deleteParameter('/shop/x')     // in every region
 *   Listing: BatchGetSecretValue with Filters (`name` prefix, `tag-key`, `tag-value`; needs the role's
 *   `list`, i.e. secretsmanager:ListSecrets), MaxResults <= 20 and NextToken, unreadable secrets in
 *   Errors; GetParametersByPath with Path, Recursive, MaxResults <= 10 and NextToken
 *   const { token } = aws.issuePodToken({ namespace, serviceAccount, audience });
 *   aws.count({ region, operation, status }); aws.calls (region, operation, accessKeyId, principal, status, error)
 *   aws.issuedCredentials (to check that no secret key or session token leaks); aws.advance(ms); await aws.close();
 *   await aws.connections() (client connections open across all listeners)
 * Faults of the shared vocabulary (./faults.ts) for Secrets Manager and SSM requests only (not STS or the
 * agent): aws.inject({ kind: 'status', status: 500 }, { times, match }), matched against `<region>/<X-Amz-Target>`
 * (`us-east-1/secretsmanager.GetSecretValue`, `us-east-1/AmazonSSM.GetParameter`; `us-east-1/` for one
 * region); aws.faults.applied counts them. A `status` fault is answered with AWS's JSON error for it
 * (awsErrorType: 5xx InternalServiceError/InternalServerError, 400 and 429 ThrottlingException, 403
 * AccessDeniedException, 404 ResourceNotFoundException/ParameterNotFound) and recorded in calls with that
 * error. The `shape` answer is the real one with its values of the wrong type (see awsWrongShape).
 * For a precise wrong shape: aws.answerWith((real) => ({ ...real, SecretString: 1 }), { times, match })
 * answers 200 with that JSON (JSON 1.1 headers) instead of the real answer, after the request was
 * authenticated and authorized; aws.clearAnswers() disarms them.
 * Role names become ARNs `arn:aws:iam::<account>:role/<name>`; `allow` lists name globs (`*` any run).
 */
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPodTokenSigner } from './pod-tokens.js';
import { createFaultInjector, type Fault, type FaultInjector, type InjectOptions } from './faults.js';

export const testAccount = '123456789012';

export interface AwsTestServerOptions {
  /** Regions to serve, one listener each (default ["us-east-1"]); the first also serves STS and the agent. */
  readonly regions?: string[];
  /** Lifetime of issued temporary credentials (default 3600 s). */
  readonly credentialTtlSeconds?: number;
}

export interface RoleDefinition {
  readonly name: string;
  /** Who may assume it: IRSA trust (namespace and service account of the pod token's subject). */
  readonly trust?: Array<{ namespace: string; serviceAccount: string }>;
  /** Audience the IRSA token must carry (default sts.amazonaws.com). */
  readonly audience?: string;
  /** Secret names, parameter names and parameter paths it may read (globs). */
  readonly allow: string[];
  /** May call BatchGetSecretValue (default true). */
  readonly batch?: boolean;
  /** May call secretsmanager:ListSecrets, which BatchGetSecretValue with Filters needs (default true). */
  readonly list?: boolean;
}

export interface CallRecord {
  readonly region: string;
  readonly service: 'secretsmanager' | 'ssm' | 'sts' | 'pod-identity';
  readonly operation: string;
  readonly status: number;
  readonly error?: string;
  readonly accessKeyId?: string;
  /** The caller's ARN (assumed-role session or user) once the signature checked out. */
  readonly principal?: string;
}

export interface IssuedCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly principal: string;
}

export interface AwsTestServer {
  endpoint(region: string): string;
  readonly stsUrl: string;
  readonly podIdentityUrl: string;
  readonly calls: CallRecord[];
  readonly issuedCredentials: IssuedCredentials[];
  roleArn(name: string): string;
  defineRole(role: RoleDefinition): string;
  associatePodIdentity(association: { namespace: string; serviceAccount: string; role: string }): void;
  createAccessKey(user: { user: string; allow: string[]; batch?: boolean }): { accessKeyId: string; secretAccessKey: string };
  putSecret(name: string, value: string | Buffer, options?: { stages?: string[]; regions?: string[]; kmsDenied?: boolean; tags?: Record<string, string> }): { versionId: string; arn(region?: string): string };
  deleteSecret(name: string): void;
  deleteParameter(name: string): void;
  putParameter(name: string, value: string, options?: { type?: 'String' | 'StringList' | 'SecureString'; labels?: string[]; regions?: string[] }): number;
  issuePodToken(claims: { namespace: string; serviceAccount: string; audience: string; ttlSeconds?: number }): { token: string; expiresAt: number };
  /** A fault for the next `times` Secrets Manager/SSM requests whose `<region>/<target>` matches. */
  inject(fault: Fault, options?: InjectOptions): void;
  readonly faults: FaultInjector;
  /**
   * The next `times` (default 1; Infinity until cleared) successful Secrets Manager/SSM answers whose
   * `<region>/<X-Amz-Target>` matches `match` are a 200 with `answer(real)` as JSON instead (a
   * copy of the real answer is passed in). Checked after the `inject` faults.
   */
  answerWith(answer: (real: Record<string, unknown>) => unknown, options?: InjectOptions): void;
  clearAnswers(): void;
  count(filter?: Partial<Pick<CallRecord, 'region' | 'operation' | 'service' | 'status' | 'error' | 'principal' | 'accessKeyId'>>): number;
  /** Moves the server's clock (credential expiry, token expiry) forward. */
  advance(ms: number): void;
  /** Client connections the listeners hold open. */
  connections(): Promise<number>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// State

interface Principal {
  readonly arn: string;
  readonly allow: string[];
  readonly batch: boolean;
  readonly list?: boolean;
}

interface KeyRecord {
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiresAt?: number;
  readonly principal: Principal;
}

interface SecretVersion {
  readonly versionId: string;
  stages: string[];
  readonly value: string | Buffer;
  readonly createdDate: number;
}

interface SecretRecord {
  readonly name: string;
  readonly suffix: string;
  readonly versions: SecretVersion[];
  kmsDenied: boolean;
  tags?: Record<string, string>;
}

interface ParameterVersion {
  readonly version: number;
  readonly value: string;
  labels: string[];
  readonly modified: number;
}

interface ParameterRecord {
  readonly name: string;
  type: 'String' | 'StringList' | 'SecureString';
  readonly versions: ParameterVersion[];
}

interface RegionState {
  readonly secrets: Map<string, SecretRecord>;
  readonly parameters: Map<string, ParameterRecord>;
}

class AwsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const jsonType = 'application/x-amz-json-1.1';
const signatureWindowMs = 15 * 60_000;

function globMatches(pattern: string, value: string): boolean {
  const source = pattern
    .split('*')
    .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`).test(value);
}

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

function xmlEscape(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function amzDateToMs(value: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : undefined;
}

// ---------------------------------------------------------------------------------------------
// SigV4

/** RFC 3986 encoding as SigV4 wants it: everything but unreserved characters. */
function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalQuery(search: string): string {
  const params = [...new URLSearchParams(search)].map(([k, v]) => [uriEncode(k), uriEncode(v)] as const);
  params.sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return params.map(([k, v]) => `${k}=${v}`).join('&');
}

/** Header values from the raw list: repeated headers join with ",", runs of spaces collapse. */
function canonicalHeaders(req: IncomingMessage, signed: readonly string[]): string | undefined {
  const values = new Map<string, string[]>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    values.set(name, [...(values.get(name) ?? []), req.rawHeaders[i + 1]!.trim().replace(/\s+/g, ' ')]);
  }
  const lines: string[] = [];
  for (const name of signed) {
    const v = values.get(name);
    if (!v) return undefined;
    lines.push(`${name}:${v.join(',')}\n`);
  }
  return lines.join('');
}

interface ParsedAuthorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

function parseAuthorization(header: string | undefined): ParsedAuthorization | undefined {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return undefined;
  return { accessKeyId: m[1]!, date: m[2]!, region: m[3]!, service: m[4]!, signedHeaders: m[5]!.split(';'), signature: m[6]! };
}

function expectedSignature(req: IncomingMessage, body: Buffer, auth: ParsedAuthorization, amzDate: string, secretAccessKey: string): string | undefined {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname.split('/').map((s) => uriEncode(decodeURIComponent(s))).join('/') || '/';
  const headers = canonicalHeaders(req, auth.signedHeaders);
  if (headers === undefined) return undefined;
  const canonicalRequest = [req.method ?? 'GET', path, canonicalQuery(url.search), headers, auth.signedHeaders.join(';'), sha256Hex(body)].join('\n');
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, auth.date), auth.region), auth.service), 'aws4_request');
  return hmac(key, stringToSign).toString('hex');
}

// ---------------------------------------------------------------------------------------------

export async function startAwsTestServer(options: AwsTestServerOptions = {}): Promise<AwsTestServer> {
  const regionNames = options.regions ?? ['us-east-1'];
  const credentialTtlMs = (options.credentialTtlSeconds ?? 3600) * 1000;
  const podTokens = createPodTokenSigner();
  let offsetMs = 0;
  const now = () => Date.now() + offsetMs;
  const regions = new Map<string, RegionState>(
    regionNames.map((r) => [r, { secrets: new Map(), parameters: new Map() }]),
  );
  const roles = new Map<string, RoleDefinition>();
  const podIdentity = new Map<string, string>();
  const keys = new Map<string, KeyRecord>();
  const calls: CallRecord[] = [];
  const issuedCredentials: IssuedCredentials[] = [];
  const roleArn = (name: string) => `arn:aws:iam::${testAccount}:role/${name}`;

  function regionOf(name: string): RegionState {
    const state = regions.get(name);
    if (!state) throw new Error(`the test server does not serve region ${name}`);
    return state;
  }

  // --- pod tokens ----------------------------------------------------------------------------

  /** Checks signature, expiry and audience; returns namespace and service account of the subject. */
  function podIdentityOf(jwt: string, audience: string): { namespace: string; serviceAccount: string } {
    const claims = podTokens.verify(jwt);
    if (!claims) throw new AwsError('InvalidIdentityToken', 'The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.');
    if (typeof claims['exp'] !== 'number' || claims['exp'] * 1000 <= now()) {
      throw new AwsError('ExpiredTokenException', 'Token expired: current date/time must be before the expiration date/time.');
    }
    const aud = Array.isArray(claims['aud']) ? claims['aud'] : [claims['aud']];
    if (!aud.includes(audience)) throw new AwsError('InvalidIdentityToken', 'Incorrect token audience');
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(String(claims['sub']));
    if (!m) throw new AwsError('InvalidIdentityToken', 'The token subject is not a service account');
    return { namespace: m[1]!, serviceAccount: m[2]! };
  }

  function issueKeys(principal: Principal): IssuedCredentials & { expiresAt: number } {
    const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = randomBytes(30).toString('base64');
    const sessionToken = `IQoJ${randomBytes(48).toString('base64')}`;
    const expiresAt = Math.floor((now() + credentialTtlMs) / 1000) * 1000;
    keys.set(accessKeyId, { secretAccessKey, sessionToken, expiresAt, principal });
    const issued = { accessKeyId, secretAccessKey, sessionToken, principal: principal.arn };
    issuedCredentials.push(issued);
    return { ...issued, expiresAt };
  }

  function principalForRole(role: RoleDefinition, sessionName: string): Principal {
    return { arn: `arn:aws:sts::${testAccount}:assumed-role/${role.name}/${sessionName}`, allow: role.allow, batch: role.batch ?? true, list: role.list ?? true };
  }

  // --- STS -----------------------------------------------------------------------------------

  function assumeRoleWithWebIdentity(form: URLSearchParams): string {
    if (form.get('Version') !== '2011-06-15') throw new AwsError('InvalidAction', 'Could not find operation AssumeRoleWithWebIdentity for version ' + form.get('Version'));
    const arn = form.get('RoleArn') ?? '';
    const sessionName = form.get('RoleSessionName') ?? '';
    const token = form.get('WebIdentityToken') ?? '';
    if (!/^[\w+=,.@-]{2,64}$/.test(sessionName)) {
      throw new AwsError('ValidationError', "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*");
    }
    const role = [...roles.values()].find((r) => roleArn(r.name) === arn);
    const subject = podIdentityOf(token, role?.audience ?? 'sts.amazonaws.com');
    const trusted = role?.trust?.some((t) => t.namespace === subject.namespace && t.serviceAccount === subject.serviceAccount);
    if (!role || !trusted) throw new AwsError('AccessDenied', 'Not authorized to perform sts:AssumeRoleWithWebIdentity', 403);
    const creds = issueKeys(principalForRole(role, sessionName));
    return [
      '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">',
      '<AssumeRoleWithWebIdentityResult>',
      `<SubjectFromWebIdentityToken>system:serviceaccount:${subject.namespace}:${subject.serviceAccount}</SubjectFromWebIdentityToken>`,
      `<Audience>${xmlEscape(role.audience ?? 'sts.amazonaws.com')}</Audience>`,
      `<AssumedRoleUser><Arn>${xmlEscape(creds.principal)}</Arn><AssumedRoleId>AROA${randomBytes(8).toString('hex').toUpperCase()}:${xmlEscape(sessionName)}</AssumedRoleId></AssumedRoleUser>`,
      '<Credentials>',
      `<SessionToken>${xmlEscape(creds.sessionToken!)}</SessionToken>`,
      `<SecretAccessKey>${xmlEscape(creds.secretAccessKey)}</SecretAccessKey>`,
      `<Expiration>${new Date(creds.expiresAt).toISOString()}</Expiration>`,
      `<AccessKeyId>${creds.accessKeyId}</AccessKeyId>`,
      '</Credentials>',
      `<Provider>arn:aws:iam::${testAccount}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/TEST</Provider>`,
      '</AssumeRoleWithWebIdentityResult>',
      `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>`,
      '</AssumeRoleWithWebIdentityResponse>',
    ].join('');
  }

  function stsError(err: AwsError): string {
    const type = err.status >= 500 ? 'Receiver' : 'Sender';
    return `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>${type}</Type><Code>${err.type}</Code><Message>${xmlEscape(err.message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`;
  }

  // --- Pod Identity agent --------------------------------------------------------------------

  function podIdentityCredentials(authorization: string | undefined): Record<string, unknown> {
    if (!authorization) throw new AwsError('AccessDeniedException', 'Service account token cannot be empty', 400);
    const subject = podIdentityOf(authorization, 'pods.eks.amazonaws.com');
    const roleName = podIdentity.get(`${subject.namespace}/${subject.serviceAccount}`);
    const role = roleName ? roles.get(roleName) : undefined;
    if (!role) throw new AwsError('ResourceNotFoundException', 'No Pod Identity Association found for the service account', 400);
    const creds = issueKeys(principalForRole(role, `eks-test-${subject.namespace}-${subject.serviceAccount}`.slice(0, 64)));
    return {
      AccessKeyId: creds.accessKeyId,
      SecretAccessKey: creds.secretAccessKey,
      Token: creds.sessionToken,
      AccountId: testAccount,
      Expiration: new Date(creds.expiresAt).toISOString(),
    };
  }

  // --- signature check -----------------------------------------------------------------------

  function authenticate(req: IncomingMessage, body: Buffer, region: string, service: string): { accessKeyId: string; principal: Principal } {
    const auth = parseAuthorization(req.headers.authorization);
    if (!auth) throw new AwsError('MissingAuthenticationTokenException', 'Missing Authentication Token');
    const record = keys.get(auth.accessKeyId);
    if (!record) throw new AwsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    if (record.sessionToken !== undefined && req.headers['x-amz-security-token'] !== record.sessionToken) {
      throw new AwsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    }
    if (record.expiresAt !== undefined && record.expiresAt <= now()) {
      throw new AwsError('ExpiredTokenException', 'The security token included in the request is expired');
    }
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    const signedAt = amzDateToMs(amzDate);
    if (signedAt === undefined || !auth.signedHeaders.includes('host') || !auth.signedHeaders.includes('x-amz-date')) {
      throw new AwsError('IncompleteSignatureException', 'Authorization header requires existence of either a \'X-Amz-Date\' or a \'Date\' header, and signed host.');
    }
    if (Math.abs(signedAt - Date.now()) > signatureWindowMs) {
      throw new AwsError('InvalidSignatureException', `Signature expired: ${amzDate} is now earlier than the allowed window.`);
    }
    if (auth.date !== amzDate.slice(0, 8) || auth.region !== region || auth.service !== service) {
      throw new AwsError('InvalidSignatureException', `Credential should be scoped to a valid region and service: ${region}/${service}.`);
    }
    const expected = expectedSignature(req, body, auth, amzDate, record.secretAccessKey);
    const given = Buffer.from(auth.signature, 'hex');
    if (!expected || !timingSafeEqual(Buffer.from(expected, 'hex'), given)) {
      throw new AwsError(
        'InvalidSignatureException',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      );
    }
    return { accessKeyId: auth.accessKeyId, principal: record.principal };
  }

  function authorize(principal: Principal, action: string, resourceName: string, resourceArn: string): void {
    if (!principal.allow.some((p) => globMatches(p, resourceName))) {
      throw new AwsError(
        'AccessDeniedException',
        `User: ${principal.arn} is not authorized to perform: ${action} on resource: ${resourceArn} because no identity-based policy allows the ${action} action`,
      );
    }
  }

  // --- Secrets Manager -----------------------------------------------------------------------

  const secretArn = (region: string, s: SecretRecord) => `arn:aws:secretsmanager:${region}:${testAccount}:secret:${s.name}-${s.suffix}`;

  function findSecret(state: RegionState, region: string, id: string): SecretRecord | undefined {
    const arnPrefix = `arn:aws:secretsmanager:${region}:${testAccount}:secret:`;
    const name = id.startsWith(arnPrefix) ? id.slice(arnPrefix.length) : id;
    for (const s of state.secrets.values()) {
      if (s.name === name || `${s.name}-${s.suffix}` === name) return s;
    }
    return undefined;
  }

  function secretNameOf(region: string, id: string): string {
    const arnPrefix = `arn:aws:secretsmanager:${region}:${testAccount}:secret:`;
    return id.startsWith(arnPrefix) ? id.slice(arnPrefix.length).replace(/-[A-Za-z0-9]{6}$/, '') : id;
  }

  function secretValue(region: string, principal: Principal, input: Record<string, unknown>): Record<string, unknown> {
    const state = regionOf(region);
    const id = String(input['SecretId'] ?? '');
    if (id === '') throw new AwsError('InvalidParameterException', 'You must specify a SecretId.');
    const secret = findSecret(state, region, id);
    authorize(principal, 'secretsmanager:GetSecretValue', secret?.name ?? secretNameOf(region, id), secret ? secretArn(region, secret) : id);
    if (!secret) throw new AwsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    const versionId = input['VersionId'] as string | undefined;
    const stage = input['VersionStage'] as string | undefined;
    let version: SecretVersion | undefined;
    if (versionId !== undefined) {
      version = secret.versions.find((v) => v.versionId === versionId);
      if (!version || (stage !== undefined && !version.stages.includes(stage))) {
        throw new AwsError('ResourceNotFoundException', `Secrets Manager can't find the specified secret value for VersionId: ${versionId}`);
      }
    } else {
      const wanted = stage ?? 'AWSCURRENT';
      version = secret.versions.find((v) => v.stages.includes(wanted));
      if (!version) throw new AwsError('ResourceNotFoundException', `Secrets Manager can't find the specified secret value for staging label: ${wanted}`);
    }
    if (secret.kmsDenied) {
      throw new AwsError('DecryptionFailure', "Secrets Manager can't decrypt the protected secret text using the provided KMS key.");
    }
    return {
      ARN: secretArn(region, secret),
      Name: secret.name,
      VersionId: version.versionId,
      VersionStages: version.stages,
      CreatedDate: version.createdDate / 1000,
      ...(typeof version.value === 'string' ? { SecretString: version.value } : { SecretBinary: version.value.toString('base64') }),
    };
  }

  function batchGetSecretValue(region: string, principal: Principal, input: Record<string, unknown>): Record<string, unknown> {
    if (!principal.batch) {
      throw new AwsError(
        'AccessDeniedException',
        `User: ${principal.arn} is not authorized to perform: secretsmanager:BatchGetSecretValue because no identity-based policy allows the secretsmanager:BatchGetSecretValue action`,
      );
    }
    if (input['Filters'] !== undefined) return batchGetByFilters(region, principal, input);
    const ids = input['SecretIdList'];
    if (!Array.isArray(ids) || ids.length === 0) throw new AwsError('InvalidParameterException', 'Either SecretIdList or Filters must be specified.');
    if (ids.length > 20) throw new AwsError('InvalidParameterException', 'SecretIdList can contain at most 20 secret IDs.');
    const values: Record<string, unknown>[] = [];
    const errors: Record<string, unknown>[] = [];
    for (const id of ids) {
      try {
        values.push(secretValue(region, principal, { SecretId: id }));
      } catch (err) {
        if (!(err instanceof AwsError)) throw err;
        errors.push({ SecretId: id, ErrorCode: err.type, Message: err.message });
      }
    }
    return { SecretValues: values, Errors: errors };
  }

  /** BatchGetSecretValue with Filters: ListSecrets' matching, then a GetSecretValue per secret, paged. */
  function batchGetByFilters(region: string, principal: Principal, input: Record<string, unknown>): Record<string, unknown> {
    if (input['SecretIdList'] !== undefined) throw new AwsError('InvalidParameterException', 'Either SecretIdList or Filters must be specified, not both.');
    if (principal.list === false) {
      throw new AwsError(
        'AccessDeniedException',
        `User: ${principal.arn} is not authorized to perform: secretsmanager:ListSecrets because no identity-based policy allows the secretsmanager:ListSecrets action`,
      );
    }
    const filters = input['Filters'] as Array<{ Key: string; Values: string[] }>;
    const max = Number(input['MaxResults'] ?? 20);
    if (!(max >= 1 && max <= 20)) throw new AwsError('InvalidParameterException', 'MaxResults must be between 1 and 20.');
    const matches = (s: SecretRecord) =>
      filters.every(({ Key: key, Values: values }) => {
        const tags = Object.entries(s.tags ?? {});
        if (key === 'name') return values.some((v) => s.name.startsWith(v));
        if (key === 'tag-key') return values.some((v) => tags.some(([k]) => k.startsWith(v)));
        if (key === 'tag-value') return values.some((v) => tags.some(([, tv]) => tv.startsWith(v)));
        throw new AwsError('InvalidParameterException', `Invalid filter key: ${key}`);
      });
    const all = [...regionOf(region).secrets.values()].filter((s) => s.versions.some((v) => v.stages.includes('AWSCURRENT')) && matches(s));
    all.sort((a, b) => (a.name < b.name ? -1 : 1));
    const start = input['NextToken'] ? Number(Buffer.from(String(input['NextToken']), 'base64').toString('utf8')) : 0;
    const values: Record<string, unknown>[] = [];
    const errors: Record<string, unknown>[] = [];
    for (const secret of all.slice(start, start + max)) {
      try {
        values.push(secretValue(region, principal, { SecretId: secret.name }));
      } catch (err) {
        if (!(err instanceof AwsError)) throw err;
        errors.push({ SecretId: secret.name, ErrorCode: err.type, Message: err.message });
      }
    }
    const next = start + max < all.length ? Buffer.from(String(start + max)).toString('base64') : undefined;
    return { SecretValues: values, Errors: errors, ...(next ? { NextToken: next } : {}) };
  }

  function describeSecret(region: string, principal: Principal, input: Record<string, unknown>): Record<string, unknown> {
    const id = String(input['SecretId'] ?? '');
    const secret = findSecret(regionOf(region), region, id);
    authorize(principal, 'secretsmanager:DescribeSecret', secret?.name ?? secretNameOf(region, id), secret ? secretArn(region, secret) : id);
    if (!secret) throw new AwsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    return {
      ARN: secretArn(region, secret),
      Name: secret.name,
      VersionIdsToStages: Object.fromEntries(secret.versions.filter((v) => v.stages.length > 0).map((v) => [v.versionId, v.stages])),
    };
  }

  // --- SSM -----------------------------------------------------------------------------------

  const parameterArn = (region: string, name: string) => `arn:aws:ssm:${region}:${testAccount}:parameter${name.startsWith('/') ? '' : '/'}${name}`;

  function splitSelector(region: string, raw: string): { name: string; selector?: string } {
    const arnPrefix = `arn:aws:ssm:${region}:${testAccount}:parameter`;
    let rest = raw;
    let isArn = false;
    if (raw.startsWith(arnPrefix)) {
      rest = raw.slice(arnPrefix.length);
      isArn = true;
    }
    const colon = rest.indexOf(':');
    const base = colon >= 0 ? rest.slice(0, colon) : rest;
    const name = isArn && !base.startsWith('/') ? base : isArn ? (regionOf(region).parameters.has(base) ? base : base.slice(1)) : base;
    return colon >= 0 ? { name, selector: rest.slice(colon + 1) } : { name };
  }

  function parameterOut(region: string, p: ParameterRecord, v: ParameterVersion, decrypt: boolean, selector?: string): Record<string, unknown> {
    const value = p.type === 'SecureString' && !decrypt ? Buffer.from(`kms:${v.value}`).toString('base64') : v.value;
    return {
      Name: p.name,
      Type: p.type,
      Value: value,
      Version: v.version,
      ...(selector !== undefined ? { Selector: `:${selector}` } : {}),
      LastModifiedDate: v.modified / 1000,
      ARN: parameterArn(region, p.name),
      DataType: 'text',
    };
  }

  /** Resolves `name[:selector]`; undefined when the parameter or version does not exist. */
  function lookupParameter(region: string, raw: string): { p: ParameterRecord; v: ParameterVersion; selector?: string } | { missing: 'parameter' | 'version'; name: string; selector?: string } {
    const { name, selector } = splitSelector(region, raw);
    const p = regionOf(region).parameters.get(name);
    if (!p) return { missing: 'parameter', name, ...(selector !== undefined ? { selector } : {}) };
    const v =
      selector === undefined
        ? p.versions[p.versions.length - 1]
        : /^\d+$/.test(selector)
          ? p.versions.find((x) => x.version === Number(selector))
          : p.versions.find((x) => x.labels.includes(selector));
    if (!v) return { missing: 'version', name, ...(selector !== undefined ? { selector } : {}) };
    return { p, v, ...(selector !== undefined ? { selector } : {}) };
  }

  function getParameter(region: string, principal: Principal, input: Record<string, unknown>): Record<string, unknown> {
    const raw = String(input['Name'] ?? '');
    const { name } = splitSelector(region, raw);
    authorize(principal, 'ssm:GetParameter', name, parameterArn(region, name));
    const found = lookupParameter(region, raw);
    if ('missing' in found) {
      if (found.missing === 'parameter') throw new AwsError('ParameterNotFound', '');
      throw new AwsError('ParameterVersionNotFound', `Systems Manager could not find version ${found.selector} of ${found.name}. Verify the version and try again.`);
    }
    return { Parameter: parameterOut(region, found.p, found.v, input['WithDecryption'] === true, found.selector) };
  }

  function getParameters(region: string, principal: Principal, input: Record<string, unknown>): Record<string, unknown> {
    const names = input['Names'];
    if (!Array.isArray(names) || names.length === 0 || names.length > 10) {
      throw new AwsError(
        'ValidationException',
        `1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10`,
      );
    }
    // Like IAM: one name the caller may not read denies the whole call.
    for (const raw of names) {
      const { name } = splitSelector(region, String(raw));
      authorize(principal, 'ssm:GetParameters', name, parameterArn(region, name));
    }
    const parameters: Record<string, unknown>[] = [];
    const invalid: string[] = [];
    for (const raw of names) {
      const found = lookupParameter(region, String(raw));
      if ('missing' in found) invalid.push(String(raw));
      else parameters.push(parameterOut(region, found.p, found.v, input['WithDecryption'] === true, found.selector));
    }
    return { Parameters: parameters, InvalidParameters: invalid };
  }

  function getParametersByPath(region: string, principal: Principal, input: Record<string, unknown>): Record<string, unknown> {
    const path = String(input['Path'] ?? '');
    if (!path.startsWith('/')) throw new AwsError('ValidationException', 'The parameter path must start with "/".');
    const max = Number(input['MaxResults'] ?? 10);
    if (!(max >= 1 && max <= 10)) throw new AwsError('ValidationException', "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10");
    const trimmed = path === '/' ? '' : path.replace(/\/$/, '');
    authorize(principal, 'ssm:GetParametersByPath', trimmed || '/', parameterArn(region, trimmed || '/'));
    const prefix = `${trimmed}/`;
    const all = [...regionOf(region).parameters.values()]
      .filter((p) => p.name.startsWith(prefix) && (input['Recursive'] === true || !p.name.slice(prefix.length).includes('/')))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const start = input['NextToken'] ? Number(Buffer.from(String(input['NextToken']), 'base64').toString('utf8')) : 0;
    const page = all.slice(start, start + max);
    const next = start + max < all.length ? Buffer.from(String(start + max)).toString('base64') : undefined;
    return {
      Parameters: page.map((p) => parameterOut(region, p, p.versions[p.versions.length - 1]!, input['WithDecryption'] === true)),
      ...(next ? { NextToken: next } : {}),
    };
  }

  const operations: Record<string, { service: 'secretsmanager' | 'ssm'; run: (region: string, principal: Principal, input: Record<string, unknown>) => Record<string, unknown> }> = {
    'secretsmanager.GetSecretValue': { service: 'secretsmanager', run: secretValue },
    'secretsmanager.BatchGetSecretValue': { service: 'secretsmanager', run: batchGetSecretValue },
    'secretsmanager.DescribeSecret': { service: 'secretsmanager', run: describeSecret },
    'AmazonSSM.GetParameter': { service: 'ssm', run: getParameter },
    'AmazonSSM.GetParameters': { service: 'ssm', run: getParameters },
    'AmazonSSM.GetParametersByPath': { service: 'ssm', run: getParametersByPath },
  };

  // --- HTTP ----------------------------------------------------------------------------------

  function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const payload = JSON.stringify(body);
    res.writeHead(status, { 'content-type': jsonType, 'x-amzn-requestid': randomUUID(), 'content-length': Buffer.byteLength(payload), ...extra });
    res.end(payload);
  }

  function sendXml(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': randomUUID(), 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  async function handleService(region: string, req: IncomingMessage, res: ServerResponse, body: Buffer, target: string): Promise<void> {
    const op = operations[target];
    const operation = target.split('.')[1] ?? target;
    const service = op?.service ?? (target.startsWith('AmazonSSM') ? 'ssm' : 'secretsmanager');
    const record = (status: number, extra: Partial<CallRecord>) => calls.push({ region, service, operation, status, ...extra });
    const spoiler = op ? injected.take(`${region}/${target}`) : undefined;
    if (spoiler && (await injected.before(spoiler, res, awsErrorBody(service), jsonType))) {
      if (spoiler.kind === 'status') record(spoiler.status, { error: awsErrorType(service, spoiler.status) });
      else record(0, { error: `injected ${spoiler.kind}` });
      return;
    }
    const sendJson = (res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}) =>
      injected.send(spoiler, res, status, { 'content-type': jsonType, 'x-amzn-requestid': randomUUID(), ...extra }, JSON.stringify(body), awsWrongShape(service, body));
    let who: { accessKeyId: string; principal: Principal } | undefined;
    try {
      if (!op) throw new AwsError('UnknownOperationException', '');
      if (!String(req.headers['content-type'] ?? '').startsWith(jsonType)) throw new AwsError('SerializationException', 'Unexpected content type');
      who = authenticate(req, body, region, op.service);
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        throw new AwsError('SerializationException', 'Start of structure or map found where not expected.');
      }
      const out = op.run(region, who.principal, input);
      const rewrite = takeAnswer(`${region}/${target}`);
      record(200, { accessKeyId: who.accessKeyId, principal: who.principal.arn });
      sendJson(res, 200, rewrite ? rewrite(structuredClone(out)) : out);
    } catch (err) {
      if (!(err instanceof AwsError)) throw err;
      record(err.status, { error: err.type, ...(who ? { accessKeyId: who.accessKeyId, principal: who.principal.arn } : {}) });
      sendJson(res, err.status, { __type: err.type, message: err.message }, { 'x-amzn-errortype': `${err.type}:` });
    }
  }

  async function handle(region: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/v1/credentials') {
      try {
        const out = podIdentityCredentials(req.headers.authorization);
        calls.push({ region, service: 'pod-identity', operation: 'GetCredentials', status: 200 });
        sendJson(res, 200, out);
      } catch (err) {
        if (!(err instanceof AwsError)) throw err;
        calls.push({ region, service: 'pod-identity', operation: 'GetCredentials', status: err.status, error: err.type });
        sendJson(res, err.status, { message: err.message });
      }
      return;
    }
    const target = req.headers['x-amz-target'];
    if (req.method === 'POST' && typeof target === 'string') return handleService(region, req, res, body, target);
    if (req.method === 'POST' && String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      const form = new URLSearchParams(body.toString('utf8'));
      const action = form.get('Action') ?? '';
      try {
        if (action !== 'AssumeRoleWithWebIdentity') throw new AwsError('InvalidAction', `Could not find operation ${action} for version ${form.get('Version')}`);
        const xml = assumeRoleWithWebIdentity(form);
        calls.push({ region, service: 'sts', operation: action, status: 200, principal: /<Arn>([^<]+)<\/Arn>/.exec(xml)?.[1] ?? '' });
        sendXml(res, 200, xml);
      } catch (err) {
        if (!(err instanceof AwsError)) throw err;
        calls.push({ region, service: 'sts', operation: action, status: err.status, error: err.type });
        sendXml(res, err.status, stsError(err));
      }
      return;
    }
    sendJson(res, 404, { message: 'Not Found' });
  }

  const injected = createFaultInjector();
  const answers: Array<{ answer: (real: Record<string, unknown>) => unknown; remaining: number; match?: string | RegExp }> = [];
  function takeAnswer(route: string): ((real: Record<string, unknown>) => unknown) | undefined {
    const index = answers.findIndex((a) => a.match === undefined || (typeof a.match === 'string' ? route.includes(a.match) : a.match.test(route)));
    if (index < 0) return undefined;
    const rule = answers[index]!;
    rule.remaining -= 1;
    if (rule.remaining <= 0) answers.splice(index, 1);
    return rule.answer;
  }
  const servers: Array<{ region: string; server: Server; url: string }> = [];
  for (const region of regionNames) {
    const server = createServer((req, res) => {
      handle(region, req, res).catch(() => {
        if (!res.headersSent) sendJson(res, 500, { __type: 'InternalFailure', message: 'test server failure' });
        else res.destroy();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push({ region, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  }
  const first = servers[0]!;

  const closeServers = async () => {
    injected.releaseHanging();
  };

  return {
    endpoint(region) {
      const s = servers.find((x) => x.region === region);
      if (!s) throw new Error(`no listener for region ${region}`);
      return s.url;
    },
    stsUrl: first.url,
    podIdentityUrl: `${first.url}/v1/credentials`,
    calls,
    issuedCredentials,
    roleArn,
    defineRole(role) {
      roles.set(role.name, role);
      return roleArn(role.name);
    },
    associatePodIdentity({ namespace, serviceAccount, role }) {
      podIdentity.set(`${namespace}/${serviceAccount}`, role);
    },
    createAccessKey({ user, allow, batch = true }) {
      const accessKeyId = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
      const secretAccessKey = randomBytes(30).toString('base64');
      const principal = { arn: `arn:aws:iam::${testAccount}:user/${user}`, allow, batch };
      keys.set(accessKeyId, { secretAccessKey, principal });
      issuedCredentials.push({ accessKeyId, secretAccessKey, principal: principal.arn });
      return { accessKeyId, secretAccessKey };
    },
    putSecret(name, value, opts = {}) {
      const versionId = randomUUID();
      const stages = opts.stages ?? ['AWSCURRENT'];
      let suffix = '';
      for (const region of opts.regions ?? regionNames) {
        const state = regionOf(region);
        let secret = state.secrets.get(name);
        if (!secret) {
          suffix ||= [...regions.values()].map((r) => r.secrets.get(name)?.suffix).find(Boolean) ?? randomBytes(3).toString('hex');
          secret = { name, suffix, versions: [], kmsDenied: false };
          state.secrets.set(name, secret);
        }
        suffix = secret.suffix;
        secret.kmsDenied = opts.kmsDenied ?? false;
        if (opts.tags) secret.tags = { ...opts.tags };
        if (stages.includes('AWSCURRENT')) {
          for (const v of secret.versions) {
            if (v.stages.includes('AWSCURRENT')) v.stages = [...v.stages.filter((s) => s !== 'AWSCURRENT' && s !== 'AWSPREVIOUS'), 'AWSPREVIOUS'];
            else v.stages = v.stages.filter((s) => s !== 'AWSPREVIOUS');
          }
        }
        for (const v of secret.versions) v.stages = v.stages.filter((s) => s === 'AWSPREVIOUS' || s === 'AWSCURRENT' || !stages.includes(s));
        secret.versions.push({ versionId, stages: [...stages], value: typeof value === 'string' ? value : Buffer.from(value), createdDate: now() });
      }
      const home = regionNames[0]!;
      return {
        versionId,
        arn: (region = home) => `arn:aws:secretsmanager:${region}:${testAccount}:secret:${name}-${suffix}`,
      };
    },
    deleteSecret(name) {
      for (const state of regions.values()) state.secrets.delete(name);
    },
    deleteParameter(name) {
      for (const state of regions.values()) state.parameters.delete(name);
    },
    putParameter(name, value, opts = {}) {
      let version = 0;
      for (const region of opts.regions ?? regionNames) {
        const state = regionOf(region);
        const p = state.parameters.get(name) ?? { name, type: opts.type ?? 'String', versions: [] };
        p.type = opts.type ?? p.type;
        state.parameters.set(name, p);
        const labels = opts.labels ?? [];
        for (const v of p.versions) v.labels = v.labels.filter((l) => !labels.includes(l));
        version = p.versions.length + 1;
        p.versions.push({ version, value, labels: [...labels], modified: now() });
      }
      return version;
    },
    issuePodToken({ namespace, serviceAccount, audience, ttlSeconds = 3600 }) {
      const iat = Math.floor(now() / 1000);
      const exp = iat + ttlSeconds;
      const token = podTokens.sign({
        aud: [audience],
        exp,
        iat,
        nbf: iat,
        iss: 'https://oidc.eks.us-east-1.amazonaws.com/id/TEST',
        sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
        'kubernetes.io': { namespace, serviceaccount: { name: serviceAccount, uid: randomUUID() } },
      });
      return { token, expiresAt: exp * 1000 };
    },
    inject(fault, opts) {
      injected.inject(fault, opts);
    },
    faults: injected,
    answerWith(answer, { times = 1, match } = {}) {
      answers.push({ answer, remaining: times, ...(match !== undefined ? { match } : {}) });
    },
    clearAnswers() {
      answers.length = 0;
    },
    count(filter = {}) {
      return calls.filter((c) => Object.entries(filter).every(([k, v]) => c[k as keyof CallRecord] === v)).length;
    },
    advance(ms) {
      offsetMs += ms;
    },
    async connections() {
      const counts = await Promise.all(
        servers.map(({ server }) => new Promise<number>((resolve) => server.getConnections((err, n) => resolve(err ? 0 : n)))),
      );
      return counts.reduce((a, b) => a + b, 0);
    },
    async close() {
      await closeServers();
      await Promise.all(
        servers.map(async ({ server }) => {
          server.closeAllConnections();
          server.close();
          await once(server, 'close').catch(() => {});
        }),
      );
    },
  };
}

/** The AWS error an injected status stands for: throttling for 400 and 429, a service fault for 5xx. */
export function awsErrorType(service: 'secretsmanager' | 'ssm', status: number): string {
  if (status >= 500) return service === 'ssm' ? 'InternalServerError' : 'InternalServiceError';
  if (status === 400 || status === 429) return 'ThrottlingException';
  if (status === 404) return service === 'ssm' ? 'ParameterNotFound' : 'ResourceNotFoundException';
  return 'AccessDeniedException';
}

const errorMessages: Record<string, string> = {
  InternalServerError: 'An error occurred on the server side.',
  InternalServiceError: 'An error occurred on the server side.',
  ThrottlingException: 'Rate exceeded',
  ParameterNotFound: '',
  ResourceNotFoundException: "Secrets Manager can't find the specified secret.",
  AccessDeniedException: 'not authorized',
};

/** AWS's JSON 1.1 error for an injected status, as the service would send it. */
function awsErrorBody(service: 'secretsmanager' | 'ssm') {
  return (status: number): { body: string; headers: Record<string, string> } => {
    const type = awsErrorType(service, status);
    return { body: JSON.stringify({ __type: type, message: errorMessages[type] }), headers: { 'x-amzn-errortype': `${type}:`, 'x-amzn-requestid': randomUUID() } };
  };
}

/**
 * JSON of the wrong shape for the answer `body` would have been: for Secrets Manager a secret value
 * that is not a string; for SSM the real answer with every parameter's Value a number (the SDK
 * checks no types), or a Parameters that is not a list when the answer has no parameter to spoil.
 */
function awsWrongShape(service: 'secretsmanager' | 'ssm', body: unknown): string {
  if (service === 'secretsmanager') {
    return JSON.stringify({ ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:x-abc', Name: 'x', SecretString: 12345 });
  }
  const answer = (body ?? {}) as { Parameter?: Record<string, unknown>; Parameters?: Array<Record<string, unknown>> };
  const spoil = (p: Record<string, unknown>) => ({ ...p, Value: 12345 });
  if (answer.Parameter) return JSON.stringify({ ...answer, Parameter: spoil(answer.Parameter) });
  if (answer.Parameters?.length) return JSON.stringify({ ...answer, Parameters: answer.Parameters.map(spoil) });
  return JSON.stringify({ ...answer, Parameters: { Name: 'x', Type: 'String', Value: 12345, Version: 1 } });
}
