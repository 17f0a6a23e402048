/**
 * The parts of `@kubernetes/client-node` the kubernetes store uses, in one place, so that the
 * build's bundle (scripts/bundle.mjs) keeps only these: importing the whole package loads about
 * 1,700 modules (0.8 s and ~50 MiB on a node), the tree-shaken bundle a fraction of that.
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
