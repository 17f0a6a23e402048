import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const redundantTotals = ['usp_nodejs_active_resources_total', 'usp_nodejs_active_handles_total', 'usp_nodejs_active_requests_total'];

const clientStateValue = { idle: 0, loading: 1, loaded: 2, failed: 3 } as const;

/** The provider's Prometheus metrics. Labels are low-cardinality by construction: never a ref or a value. */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) {
    // The event-loop lag histogram samples every 100 ms, not prom-client's default 10 ms: at 10 ms
    // its timer woke an idle provider 100 times a second (about 0.15 CPU s per idle minute on every
    // node, docs/performance.md); a stall still shows in full.
    collectDefaultMetrics({ register: registry, prefix: 'usp_', eventLoopMonitoringPrecision: 100 });
    // Gauges named _total, which Prometheus' lint rejects; each is the sum of the same gauge
    // without the suffix (labelled by type), so no information goes with them (docs/metrics.md).
    for (const name of redundantTotals) registry.removeSingleMetric(name);
  }
  const registers = [registry];
  let storeClients: () => Iterable<{ store: string; backend: string; client: keyof typeof clientStateValue }> = () => [];
  return {
    registry,
    mounts: new Counter({
      name: 'usp_mount_requests_total',
      help: 'Mount calls by outcome (ok or error) and error code.',
      labelNames: ['outcome', 'code'] as const,
      registers,
    }),
    mountDuration: new Histogram({
      name: 'usp_mount_duration_seconds',
      help: 'Time to answer a Mount call.',
      labelNames: ['outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    backendRequests: new Counter({
      name: 'usp_backend_requests_total',
      help: 'Calls to stores by store, backend and outcome (ok or an error code).',
      labelNames: ['store', 'backend', 'outcome'] as const,
      registers,
    }),
    backendDuration: new Histogram({
      name: 'usp_backend_request_duration_seconds',
      help: 'Time of one store call.',
      labelNames: ['store', 'backend'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    objectsServed: new Counter({
      name: 'usp_objects_served_total',
      help: 'Objects returned in successful Mounts, by store.',
      labelNames: ['store'] as const,
      registers,
    }),
    optionalSkipped: new Counter({
      name: 'usp_optional_objects_skipped_total',
      help: 'Optional objects left out of a Mount because the store does not have them.',
      labelNames: ['store'] as const,
      registers,
    }),
    findExcluded: new Counter({
      name: 'usp_find_refs_excluded_total',
      help: 'Secrets a find object\'s listing found that the store\'s access rules left out of the Mount.',
      labelNames: ['store'] as const,
      registers,
    }),
    responseBytes: new Histogram({
      name: 'usp_mount_response_bytes',
      help: 'Total file bytes of successful Mount responses.',
      buckets: [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304],
      registers,
    }),
    largeResponses: new Counter({
      name: 'usp_mount_large_responses_total',
      help: 'Mount responses above 1 MiB: they cannot be synced into a Kubernetes Secret.',
      registers,
    }),
    cacheHits: new Counter({
      name: 'usp_cache_hits_total',
      help: 'Objects served from the per-identity cache.',
      labelNames: ['store'] as const,
      registers,
    }),
    cacheMisses: new Counter({
      name: 'usp_cache_misses_total',
      help: 'Objects not in the cache (or expired), fetched from the store.',
      labelNames: ['store'] as const,
      registers,
    }),
    coalesced: new Counter({
      name: 'usp_cache_coalesced_total',
      help: 'Requests that waited for an identical store call already in flight instead of making their own.',
      labelNames: ['store'] as const,
      registers,
    }),
    staleServes: new Counter({
      name: 'usp_cache_stale_served_total',
      help: 'Cached values served past their TTL because the store failed (staleIfError).',
      labelNames: ['store'] as const,
      registers,
    }),
    evictions: new Counter({
      name: 'usp_cache_evictions_total',
      help: 'Cache entries dropped to stay within maxEntries or maxBytes.',
      labelNames: ['store'] as const,
      registers,
    }),
    queueWait: new Histogram({
      name: 'usp_store_queue_wait_seconds',
      help: 'Time a store call waited for a free slot under the store concurrency limit.',
      labelNames: ['store'] as const,
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    }),
    retries: new Counter({
      name: 'usp_store_retries_total',
      help: 'Store calls retried after a transient failure.',
      labelNames: ['store'] as const,
      registers,
    }),
    breakerState: new Gauge({
      name: 'usp_store_circuit_state',
      help: 'Circuit breaker per store: 0 closed, 1 half-open, 2 open (failing fast).',
      labelNames: ['store'] as const,
      registers,
    }),
    breakerRejections: new Counter({
      name: 'usp_store_circuit_rejections_total',
      help: 'Calls refused without contacting the store because its circuit was open.',
      labelNames: ['store'] as const,
      registers,
    }),
    classParses: new Counter({
      name: 'usp_class_parses_total',
      help: 'Class parameters parsed (parsed) or reused from an earlier Mount with the same parameters (reused).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    configReloads: new Counter({
      name: 'usp_config_reloads_total',
      help: 'Provider config reloads by outcome (applied, rejected, unchanged).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    queuedCalls: new Gauge({
      name: 'usp_store_queued_calls',
      help: 'Store calls waiting for a free slot under the store concurrency limit.',
      labelNames: ['store'] as const,
      registers,
    }),
    queueDropped: new Counter({
      name: 'usp_store_queue_dropped_total',
      help: 'Store calls that left the queue without a slot because their Mount deadline passed (deadline) or the Mount was cancelled (cancelled).',
      labelNames: ['store', 'reason'] as const,
      registers,
    }),
    storeClientState: new Gauge({
      name: 'usp_store_client_state',
      help: 'Client of each configured store: 0 not loaded (no Mount used it yet), 1 loading, 2 loaded, 3 failed (Mounts fail until a retry succeeds).',
      labelNames: ['store', 'backend'] as const,
      registers,
      collect() {
        this.reset();
        for (const s of storeClients()) this.set({ store: s.store, backend: s.backend }, clientStateValue[s.client]);
      },
    }),
    /** Where `usp_store_client_state` reads the current stores from (the provider sets it once it has them). */
    watchStoreClients(source: () => Iterable<{ store: string; backend: string; client: keyof typeof clientStateValue }>) {
      storeClients = source;
    },
    storeClientLoads: new Counter({
      name: 'usp_store_client_loads_total',
      help: 'Store clients created on the first Mount that used the store, by outcome (ok or error); an error is retried after a backoff.',
      labelNames: ['store', 'backend', 'outcome'] as const,
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
