// Replaces dist/src/vendor/client-node.js (tsc's one-line re-export) with a tree-shaken bundle of
// the client-node parts it names; see src/vendor/client-node.ts for why.
import { rm } from 'node:fs/promises';
import { build } from 'esbuild';

const out = 'dist/src/vendor/client-node.js';
await build({
  entryPoints: ['src/vendor/client-node.ts'],
  outfile: out,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // ws probes for these optional native add-ons inside try/catch; leave them to run time.
  external: ['bufferutil', 'utf-8-validate'],
  // Old URL code in node-fetch asks for Node's deprecated punycode module; Node warns about that
  // only outside node_modules, which a bundle is. The npm package of the same name is a drop-in.
  alias: { punycode: 'punycode/' },
  // Bundled CommonJS code calls require() for Node built-ins and for optional modules.
  banner: { js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);" },
  logLevel: 'warning',
});
await rm(`${out}.map`, { force: true });
