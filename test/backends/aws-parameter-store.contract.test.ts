import { awsParameterStoreBackend } from '../../src/backends/aws/index.js';
import { awsContractSetup, text } from '../aws/contract-setup.js';
import { runBackendContract } from './contract.js';

const listed = Array.from({ length: 12 }, (_, i) => `/shop/list/p${String(i).padStart(2, '0')}`);

runBackendContract('aws-parameter-store', async () => ({
  ...(await awsContractSetup({
    definition: awsParameterStoreBackend,
    reads: 'AmazonSSM.',
    seed(aws) {
      aws.putParameter('/shop/value', 'contract-value-0b6d2f', { type: 'SecureString' });
      const old = aws.putParameter('/shop/pinned', 'contract-old-c4e913');
      aws.putParameter('/shop/pinned', 'contract-new-9a57b0');
      aws.putParameter('/other/secret', 'contract-other-e2f146');
      for (const name of listed) aws.putParameter(name, `contract-${name}`, { type: 'SecureString' });
      aws.putParameter('/shop/list/deeper/p', 'contract-deeper');
      return {
        value: { ref: '/shop/value', content: text('contract-value-0b6d2f') },
        binary: { skip: 'Parameter Store holds text only (String, StringList, SecureString)' },
        pinned: { ref: '/shop/pinned', version: String(old), content: text('contract-old-c4e913') },
        missing: { ref: '/shop/missing' },
        denied: { ref: '/other/secret' },
      };
    },
  })),
  listing: {
    // Two pages of GetParametersByPath (10 a page); not recursive, so deeper/ is not found.
    found: { prefix: '/shop/list/', refs: listed },
    withValues: true,
    empty: { prefix: '/shop/none/' },
    denied: { prefix: '/other/' },
  },
}));
