/**
 * The parts of `@kubernetes/client-node` the kubernetes store uses, in one place. `npm run build`
 * replaces the compiled form of this file with a bundle of just these parts (scripts/bundle.mjs):
 * importing the whole package loads about 1,700 modules (0.8 s and ~50 MiB on a node), the tree-
 * shaken bundle about a tenth of that time. Tests that import the sources get the package itself.
 */
export {
  ApiException,
  bufferFromFileOrString,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  ResponseContext,
  ServerConfiguration,
  wrapHttpLibrary,
} from '@kubernetes/client-node';
