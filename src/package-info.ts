import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root, found from this file whether it runs from src/ (tests) or dist/src/ (builds). */
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the provider code');
    dir = parent;
  }
  return dir;
}

export const packageRoot = findPackageRoot();
export const runtimeName = 'universal-secrets-provider';
export const runtimeVersion: string = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')).version;
export const protoPath = join(packageRoot, 'proto', 'v1alpha1', 'service.proto');
