import { readFile } from 'node:fs/promises';

/**
 * The token kubeconfig at `path` (from the test server's writeKubeconfig) with its user's static
 * token replaced by an exec credential plugin that prints it (a node one-liner), as cloud CLIs
 * such as `aws eks get-token` do. Returns the config and the token, for leak checks.
 */
export async function execPluginKubeconfig(path: string): Promise<{ config: string; token: string }> {
  const config = JSON.parse(await readFile(path, 'utf8')) as { users: Array<{ user: Record<string, unknown> }> };
  const [entry] = config.users;
  const token = entry?.user['token'];
  if (typeof token !== 'string') throw new Error(`${path} has no token user`);
  const credential = { apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token } };
  const print = `process.stdout.write(${JSON.stringify(JSON.stringify(credential))})`;
  entry!.user = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', print], interactiveMode: 'Never' } };
  return { config: JSON.stringify(config), token };
}
