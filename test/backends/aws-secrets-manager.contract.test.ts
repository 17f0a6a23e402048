import { awsSecretsManagerBackend } from '../../src/backends/aws/index.js';
import { awsContractSetup, text } from '../aws/contract-setup.js';
import { runBackendContract } from './contract.js';

const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));

const listed = Array.from({ length: 22 }, (_, i) => `shop/list-${String(i).padStart(2, '0')}`);

runBackendContract('aws-secrets-manager', async () => ({
  ...(await awsContractSetup({
    definition: awsSecretsManagerBackend,
    reads: 'secretsmanager.',
    seed(aws) {
      aws.putSecret('shop/value', 'contract-value-3f1c9e');
      aws.putSecret('shop/binary', binary);
      const old = aws.putSecret('shop/pinned', 'contract-old-8d20aa');
      aws.putSecret('shop/pinned', 'contract-new-51b7e4');
      aws.putSecret('other/secret', 'contract-other-77a0d2');
      for (const name of listed) aws.putSecret(name, `contract-${name}`);
      return {
        value: { ref: 'shop/value', content: text('contract-value-3f1c9e') },
        binary: { ref: 'shop/binary', content: { kind: 'bytes', data: binary } },
        pinned: { ref: 'shop/pinned', version: old.versionId, content: text('contract-old-8d20aa') },
        missing: { ref: 'shop/missing' },
        denied: { ref: 'other/secret' },
      };
    },
  })),
  listing: {
    // Two pages of BatchGetSecretValue (20 a page).
    found: { prefix: 'shop/list-', refs: listed },
    withValues: true,
    empty: { prefix: 'shop/none-' },
    denied: { skip: 'this role may ListSecrets; one that may not is refused in test/find/aws.test.ts' },
  },
}));
