// Turns tsc's dist/src/main.js into a bundle (main.js plus lazily loaded chunks in chunks/), so
// that `usp serve` reads a few modules instead of about two thousand and a new provider pod serves
// sooner after a rolling update. Measured on this repository's 2-core machine, start to ready with
// a kubernetes store: about 1.03 s unbundled, 0.63-0.77 s bundled (docs/performance.md). The other
// files in dist/src stay as tsc wrote them.
//
// Left out of the bundle, loaded from node_modules as usual: the AWS SDK (imported only when an
// AWS store starts, and exercised by its tests as the package itself) and ws's optional native
// add-ons.
import { rm } from 'node:fs/promises';
import { build } from 'esbuild';

/**
 * client-node declares no `sideEffects`, so esbuild keeps every module its index re-exports that
 * might run code on load: the generated API, its ~700 models and the ObjectSerializer, none of
 * which the kubernetes store uses (it keeps only KubeConfig). Its modules have no imports for
 * effect alone (no `import './x'`), so marking its own files side-effect free drops only modules
 * whose exports nobody uses: the chunk shrinks from 1.7 MB to 0.85 MB, and RSS by about 4 MiB.
 */
const clientNodeWithoutUnusedModules = {
  name: 'client-node-without-unused-modules',
  setup(b) {
    b.onResolve({ filter: /^(\.|@kubernetes\/client-node$)/ }, async (args) => {
      const ownModule = args.path.startsWith('.') && /@kubernetes[\\/]client-node[\\/]/.test(args.importer);
      if (args.pluginData?.resolving || (!ownModule && args.path !== '@kubernetes/client-node')) return undefined;
      const found = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { resolving: true } });
      return found.errors.length > 0 ? found : { path: found.path, namespace: found.namespace, external: found.external, sideEffects: false };
    });
  },
};

/**
 * What KubeConfig imports but the kubernetes store never reaches: node-fetch (for client-node's own
 * fetch calls and `applyToFetchOptions`; it drags in whatwg-url and tr46's Unicode tables) and the
 * proxy agents (the store refuses clusters with proxy-url before any request). Each is replaced by
 * a stand-in that fails clearly if it is ever reached. The chunk goes from 0.85 MB to 0.24 MB, and
 * a node running a kubernetes store holds about 4 MiB less (docs/performance.md).
 */
const unreachedByKubeConfig = {
  // Not globalThis.Headers: reading that global makes Node load its fetch implementation (undici),
  // about 9.5 MiB of RSS for a class the store never uses.
  'node-fetch': `export class Headers { constructor() { throw new Error('node-fetch is not in this bundle (scripts/bundle.mjs)'); } }
export class AbortError extends Error {}
export class FetchError extends Error {}
export default function fetch() { throw new Error('node-fetch is not in this bundle (scripts/bundle.mjs)'); }`,
  'socks-proxy-agent': `export class SocksProxyAgent { constructor() { throw new Error('proxy-url is not supported'); } }`,
  hpagent: `export class HttpProxyAgent { constructor() { throw new Error('proxy-url is not supported'); } }
export class HttpsProxyAgent { constructor() { throw new Error('proxy-url is not supported'); } }`,
};
const standInsForKubeConfig = {
  name: 'stand-ins-for-kubeconfig',
  setup(b) {
    b.onResolve({ filter: /^(node-fetch|socks-proxy-agent|hpagent)$/ }, (args) =>
      /@kubernetes[\\/]client-node[\\/]/.test(args.importer) ? { path: args.path, namespace: 'stand-in' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'stand-in' }, (args) => ({ contents: unreachedByKubeConfig[args.path], loader: 'js' }));
  },
};

/**
 * zod re-exports every one of its ~60 message locales (`z.locales`), and a bundle cannot drop a
 * re-exported namespace. The provider speaks English only (zod's default, `en`), so the others
 * are left out: about 190 kB less source for every node to hold (docs/performance.md).
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/]/.test(args.importer) ? { path: 'zod-locales', namespace: 'stand-in-zod' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'stand-in-zod' }, () => ({
      contents: "export { default as en } from 'zod/v4/locales/en.js';",
      loader: 'js',
      resolveDir: process.cwd(),
    }));
  },
};

const out = 'dist/src/main.js';
// Chunks of an earlier build would otherwise stay beside the new ones.
await rm('dist/src/chunks', { recursive: true, force: true });
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
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  charset: 'ascii',
  external: ['@aws-sdk/*', '@smithy/*', 'bufferutil', 'utf-8-validate'],
  plugins: [clientNodeWithoutUnusedModules, standInsForKubeConfig, zodEnglishOnly],
  // Bundled CommonJS code calls require() for Node built-ins and for optional modules.
  banner: {
    js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);",
  },
  logLevel: 'error',
});
// tsc's source map describes the file this replaced.
await rm(`${out}.map`, { force: true });
