// Turns tsc's dist/src/main.js into a bundle (main.js plus lazily loaded chunks in chunks/), so
// that `usp serve` reads a few modules instead of about two thousand and a new provider pod serves
// sooner after a rolling update. Measured on this repository's 2-core machine, start to ready with
// a kubernetes store: about 1.03 s unbundled, 0.63-0.77 s bundled (docs/performance.md). The other
// files in dist/src stay as tsc wrote them.
//
// Left out of the bundle, loaded from node_modules as usual: the AWS SDK (imported only when an
// AWS store starts, and exercised by its tests as the package itself) and ws's optional native
// add-ons.
import { readFile, rm } from 'node:fs/promises';
import { build } from 'esbuild';

/**
 * grpc-health-check loads its .proto file relative to its own __dirname, which a bundle changes.
 * Point that __dirname back at the installed package (left external, it would load a second copy
 * of proto-loader and protobufjs: about 100 ms of start-up).
 */
const healthProtoFromPackage = {
  name: 'health-proto-from-package',
  setup(b) {
    b.onLoad({ filter: /grpc-health-check[\\/]build[\\/]src[\\/]health\.js$/ }, async (args) => ({
      contents: `var __dirname = require('node:path').dirname(require.resolve('grpc-health-check'));\n${await readFile(args.path, 'utf8')}`,
      loader: 'js',
    }));
  },
};

const out = 'dist/src/main.js';
await build({
  entryPoints: [out],
  outdir: 'dist/src',
  allowOverwrite: true,
  // Modules imported lazily (client-node, for kubernetes stores) go to chunks of their own, so a
  // provider without such a store neither parses nor holds them.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['@aws-sdk/*', '@smithy/*', 'bufferutil', 'utf-8-validate'],
  plugins: [healthProtoFromPackage],
  // Old URL code in node-fetch (client-node) asks for Node's deprecated punycode module; Node warns
  // about that only outside node_modules, which a bundle is. The npm package of that name is a
  // drop-in.
  alias: { punycode: 'punycode/' },
  // Bundled CommonJS code calls require() for Node built-ins and for optional modules.
  banner: {
    js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);",
  },
  logLevel: 'error',
});
// tsc's source map describes the file this replaced.
await rm(`${out}.map`, { force: true });
