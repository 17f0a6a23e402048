import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * JWT-shaped service-account tokens for the test servers: HS256 with a key only the issuing
 * server holds, so a store's test server can verify exactly the tokens the test issued.
 */
export function createPodTokenSigner(kid = 'test') {
  const key = randomBytes(32);
  const mac = (input: string) => createHmac('sha256', key).update(input).digest();
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return {
    sign(claims: Record<string, unknown>): string {
      const unsigned = `${encode({ alg: 'HS256', typ: 'JWT', kid })}.${encode(claims)}`;
      return `${unsigned}.${mac(unsigned).toString('base64url')}`;
    },
    /** The claims of a token this signer made; undefined for anything else. */
    verify(jwt: string): Record<string, unknown> | undefined {
      const [head, body, signature, ...rest] = jwt.split('.');
      if (!head || !body || !signature || rest.length > 0) return undefined;
      const expected = mac(`${head}.${body}`);
      const given = Buffer.from(signature, 'base64url');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      try {
        return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    },
  };
}
