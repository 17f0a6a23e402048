import { awsSecretsManagerBackend } from '../../src/backends/aws/index.js';
import { awsContractSetup, text } from '../aws/contract-setup.js';
import { runBackendContract } from './contract.js';

const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));

runBackendContract('aws-secrets-manager', () =>
  awsContractSetup({
    definition: awsSecretsManagerBackend,
    reads: 'secretsmanager.',
    seed(aws) {
      aws.putSecret('shop/value', 'contract-value-3f1c9e');
      aws.putSecret('shop/binary', binary);
      const old = aws.putSecret('shop/pinned', 'contract-old-8d20aa');
      aws.putSecret('shop/pinned', 'contract-new-51b7e4');
      aws.putSecret('other/secret', 'contract-other-77a0d2');
      return {
        value: { ref: 'shop/value', content: text('contract-value-3f1c9e') },
        binary: { ref: 'shop/binary', content: { kind: 'bytes', data: binary } },
        pinned: { ref: 'shop/pinned', version: old.versionId, content: text('contract-old-8d20aa') },
        missing: { ref: 'shop/missing' },
        denied: { ref: 'other/secret' },
      };
    },
  }),
);
