/**
 * The test server checked by Microsoft's own clients: `@azure/identity`'s ClientAssertionCredential
 * (msal: OIDC discovery, then the client-credentials grant with the pod's token as the assertion)
 * and `@azure/keyvault-secrets`' SecretClient (the 401 challenge first, then bearer reads). If the
 * server drifted from the wire protocol, the SDK would fail here before our backend could pass
 * against it by accident.
 */
import { ClientAssertionCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzureTestServer, type AzureTestServer } from '../servers/azure.js';

const clientId = '0b9c5a1e-2f6d-4e8a-b3c7-d1e2f3a4b5c6';

describe('the Azure test server, read by the official SDK', () => {
  let azure: AzureTestServer;
  let firstVersion: string;

  beforeAll(async () => {
    azure = await startAzureTestServer();
    azure.federate({ clientId, namespace: 'shop', serviceAccount: 'app' });
    azure.grant(clientId, ['secrets/*']);
    firstVersion = azure.setSecret('db-password', 'first-value', { contentType: 'text/plain', tags: { team: 'shop' } });
    azure.setSecret('db-password', 'second-value');
  });
  afterAll(() => azure?.close());

  const clientFor = (namespace: string, serviceAccount: string) => {
    const tlsOptions = { ca: azure.ca.cert };
    const credential = new ClientAssertionCredential(azure.tenantId, clientId, async () => azure.issuePodToken({ namespace, serviceAccount }), {
      authorityHost: azure.url,
      disableInstanceDiscovery: true,
      tlsOptions,
    });
    return new SecretClient(azure.url, credential, { disableChallengeResourceVerification: true, tlsOptions, retryOptions: { maxRetries: 0 } });
  };

  it('exchanges the pod token and reads the latest secret and a pinned version', async () => {
    const client = clientFor('shop', 'app');
    const latest = await client.getSecret('db-password');
    expect(latest.value).toBe('second-value');
    expect(latest.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(latest.properties.enabled).toBe(true);
    expect(latest.properties.vaultUrl).toBe(azure.url);
    const pinned = await client.getSecret('db-password', { version: firstVersion });
    expect(pinned.value).toBe('first-value');
    expect(pinned.properties.version).toBe(firstVersion);
    expect(pinned.properties.contentType).toBe('text/plain');
    expect(pinned.properties.tags).toEqual({ team: 'shop' });
    expect(azure.counters.challenges, 'the SDK met the 401 challenge first').toBeGreaterThan(0);
    expect(azure.tokenRequests.at(-1)).toEqual({ clientId, subject: 'system:serviceaccount:shop:app' });
  });

  it('surfaces a missing secret as Key Vault\'s SecretNotFound', async () => {
    const error = await clientFor('shop', 'app').getSecret('nope').catch((err: unknown) => err);
    expect(error).toMatchObject({ statusCode: 404, code: 'SecretNotFound' });
  });

  it('fails the exchange of a service account without a federated credential with AADSTS70021', async () => {
    const error = await clientFor('shop', 'intruder').getSecret('db-password').catch((err: unknown) => err);
    expect(String((error as Error).message)).toContain('AADSTS70021');
  });
});
