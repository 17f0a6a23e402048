import { pino } from 'pino';
import type { BackendDefinition } from '../../src/backends/types.js';
import { bytesContent } from '../../src/backends/kit/content.js';
import { parseOrThrow } from '../../src/schema.js';
import type { ContractSetup } from '../backends/contract.js';
import { startAwsTestServer, type AwsTestServer } from '../servers/aws.js';
import { primary } from './fixture.js';

const audience = 'sts.amazonaws.com';
const identity = { namespace: 'shop', serviceAccount: 'app', podName: 'app-0', podUid: 'uid-app' };

/** What differs between the two AWS kinds: what is seeded, and which requests faults apply to. */
export interface AwsKind {
  readonly definition: BackendDefinition;
  /** `secretsmanager.` or `AmazonSSM.`: faults hit the reads, not STS. */
  readonly reads: string;
  seed(aws: AwsTestServer): ContractSetup['objects'];
}

/** The contract suite's setup for an AWS kind: IRSA against the AWS test server, one region. */
export async function awsContractSetup(kind: AwsKind): Promise<ContractSetup> {
  const aws = await startAwsTestServer({ regions: [primary] });
  aws.defineRole({ name: 'shop-app', trust: [{ namespace: 'shop', serviceAccount: 'app' }], allow: ['shop/*', '/shop/*'] });
  const objects = kind.seed(aws);
  const logger = pino({ level: 'silent' });
  return {
    definition: kind.definition,
    async create(overrides = {}) {
      const raw = {
        region: primary,
        endpoint: aws.endpoint(primary),
        // A number would be seconds.
        timeout: `${overrides.timeoutMs ?? 30_000}ms`,
        auth: { method: 'irsa', audience, stsEndpoint: aws.stsUrl },
      };
      const options = parseOrThrow(kind.definition.options, raw, 'stores[0]');
      return kind.definition.create({ name: 'contract', options, restrictsNamespaces: false }, { logger, baseDir: '.', now: Date.now });
    },
    pod: {
      identity,
      parameters: { role: aws.roleArn('shop-app') },
      token: { audience, issue: () => aws.issuePodToken({ namespace: identity.namespace, serviceAccount: identity.serviceAccount, audience }).token },
    },
    objects,
    faults: { injector: aws.faults, match: kind.reads },
    connections: () => aws.connections(),
    teardown: () => aws.close(),
  };
}

export const text = (value: string) => bytesContent(value).reveal();
