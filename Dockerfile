# syntax=docker/dockerfile:1
#
# Universal Secrets Provider image: `docker build -t universal-secrets-provider:dev .`
#
# Two stages: the build stage compiles TypeScript with the full (dev) dependency tree, the
# runtime stage holds only the compiled code, the gRPC service definition and the production
# dependencies. Nothing in the runtime stage needs a shell or npm: the entrypoint is node itself.

ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so that source edits do not invalidate the install layer. Lifecycle scripts
# are skipped here: `prepare` would try to compile before the sources are copied.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY proto ./proto
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
# Re-declared: an ARG from before the first FROM is visible to FROM lines only.
ARG NODE_IMAGE
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="universal-secrets-provider" \
      org.opencontainers.image.description="Secrets Store CSI Driver provider that mounts secrets from many stores as the pod's own identity" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/${NODE_IMAGE}"
ENV NODE_ENV=production
WORKDIR /app
# package.json is read at run time (the version reported by Version) and marks the package root;
# proto/v1alpha1/service.proto is loaded by the gRPC server at start. Files stay root-owned and
# read-only to the process: it writes nothing but its socket.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/proto ./proto
# V8 code cache for the provider (one bundled file, see scripts/bundle.mjs) and the AWS SDK it
# loads when an AWS store starts, built once here because the root filesystem is read-only at run
# time. Node 22 and later use it; Node 20 ignores the variable.
ENV NODE_COMPILE_CACHE=/app/.compile-cache
RUN node /app/dist/src/main.js --version \
 && node --input-type=module -e "await Promise.all(['@aws-sdk/client-secrets-manager', '@aws-sdk/client-ssm', '@aws-sdk/client-sts'].map((m) => import(m)))"
# Why root: the driver looks for our socket in /var/run/secrets-store-csi-providers, a hostPath
# directory owned by root (mode 0755) and shared by every provider on the node. Only its owner
# can create a socket there. Running as another user would need an init container that chowns
# or chmods that shared host directory on every node: handing it to our uid lets us delete other
# providers' sockets, and opening it to everyone lets anyone swap ours (the provider refuses a
# world-writable socket directory). So the process runs as uid 0, with everything else locked
# down by the DaemonSet (deploy/base/daemonset.yaml):
# all capabilities dropped (root needs none to create a file in a directory it owns),
# no privilege escalation, read-only root filesystem, seccomp RuntimeDefault, no host network.
USER 0:0
EXPOSE 8095
ENTRYPOINT ["node", "/app/dist/src/main.js"]
CMD ["serve"]
