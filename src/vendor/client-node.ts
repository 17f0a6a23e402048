/**
 * The parts of `@kubernetes/client-node` the kubernetes store uses, in one place, so that the
 * build's bundle (scripts/bundle.mjs) keeps only these: importing the whole package loads about
 * 1,700 modules (0.8 s and ~50 MiB on a node). Only KubeConfig (what a kubeconfig means: contexts,
 * certificates, token files, exec plugins) is used; the store's calls do not go through the
 * generated API, whose models and serializer were most of the bundle's chunk.
 */
export { bufferFromFileOrString, KubeConfig } from '@kubernetes/client-node';
