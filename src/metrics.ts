/** Prometheus counters (prom-client), served on GET /metrics. */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  /**
   * The per-request counts, kept as plain numbers and added to their counters when /metrics is
   * read (the counters' collect): prom-client hashes and validates a label set on every inc(),
   * which every request paid three times (~2% of a warm manifest GET). The label values are few
   * (endpoint kinds, HTTP methods, statuses, cache outcomes), so these maps stay small.
   */
  private readonly pendingRequests = new Map<string, { kind: string; method: string; status: string; n: number; bytes: number }>();
  private readonly pendingCache = new Map<string, { kind: string; outcome: string; n: number }>();
  readonly requests = new Counter({
    name: 'stowage_requests_total', help: 'Requests by endpoint kind, method and status ("aborted" when the client hung up mid-response)',
    labelNames: ['kind', 'method', 'status'] as const, registers: [this.registry], collect: () => this.addPending(),
  });
  readonly cache = new Counter({
    name: 'stowage_cache_total', help: 'Pull-through outcomes (local, hit, miss, stale, joined, revalidated)',
    labelNames: ['kind', 'outcome'] as const, registers: [this.registry], collect: () => this.addPending(),
  });
  readonly upstreamBytes = new Counter({
    name: 'stowage_upstream_bytes_total', help: 'Body bytes read from upstreams',
    labelNames: ['upstream'] as const, registers: [this.registry],
  });
  readonly upstreamServed = new Counter({
    name: 'stowage_upstream_served_total', help: 'Upstream answers by the endpoint that gave them (a mirror\'s host, or the upstream URL\'s)',
    labelNames: ['upstream', 'served_by', 'kind'] as const, registers: [this.registry],
  });
  readonly upstreamFallthrough = new Counter({
    name: 'stowage_upstream_fallthrough_total', help: 'Requests a mirror passed on to the next endpoint, by reason (unavailable, timeout, not-found, circuit-open, ...)',
    labelNames: ['upstream', 'mirror', 'reason'] as const, registers: [this.registry],
  });
  readonly rangedFills = new Counter({
    name: 'stowage_upstream_ranged_fills_total', help: 'Blob fills fetched from the upstream as several Range requests at once (ranges:)',
    labelNames: ['upstream'] as const, registers: [this.registry],
  });
  readonly rangedFallbacks = new Counter({
    name: 'stowage_upstream_ranged_fallbacks_total', help: 'Ranged fetches that gave up, by reason (ignored-range: the upstream answered 200; bad-status, bad-range, short-body, long-body, error): the rest came from one GET',
    labelNames: ['upstream', 'reason'] as const, registers: [this.registry],
  });
  readonly digestMismatch = new Counter({
    name: 'stowage_digest_mismatch_total', help: 'Upstream content that failed digest or size verification (never cached)',
    labelNames: ['upstream'] as const, registers: [this.registry],
  });
  readonly bytesServed = new Counter({
    name: 'stowage_bytes_served_total', help: 'Response body bytes announced (Content-Length)',
    labelNames: ['kind'] as const, registers: [this.registry], collect: () => this.addPending(),
  });

  /** One served request: stowage_requests_total, and its body bytes in stowage_bytes_served_total. */
  countRequest(kind: string, method: string, status: string, bytes: number): void {
    const key = `${kind} ${method} ${status}`;
    const p = this.pendingRequests.get(key);
    if (p) {
      p.n++;
      p.bytes += bytes;
    } else {
      this.pendingRequests.set(key, { kind, method, status, n: 1, bytes });
    }
  }

  /** One pull-through outcome in stowage_cache_total. */
  countCache(kind: 'manifest' | 'blob', outcome: string): void {
    const key = `${kind} ${outcome}`;
    const p = this.pendingCache.get(key);
    if (p) p.n++;
    else this.pendingCache.set(key, { kind, outcome, n: 1 });
  }

  /** Adds the per-request counts to their counters (before any of them is read). */
  private addPending(): void {
    for (const p of this.pendingRequests.values()) {
      if (p.n > 0) this.requests.inc({ kind: p.kind, method: p.method, status: p.status }, p.n);
      if (p.bytes > 0) this.bytesServed.inc({ kind: p.kind }, p.bytes);
      p.n = 0;
      p.bytes = 0;
    }
    for (const p of this.pendingCache.values()) {
      if (p.n > 0) this.cache.inc({ kind: p.kind, outcome: p.outcome }, p.n);
      p.n = 0;
    }
  }

  readonly prefetchBlobs = new Counter({
    name: 'stowage_prefetch_blobs_total', help: 'Blob fills started by layer prefetch (not by a client request)',
    labelNames: ['upstream'] as const, registers: [this.registry],
  });
  readonly prefetchBytes = new Counter({
    name: 'stowage_prefetch_bytes_total', help: 'Bytes of blobs layer prefetch fetched and stored',
    labelNames: ['upstream'] as const, registers: [this.registry],
  });
  readonly prefetchUsed = new Counter({
    name: 'stowage_prefetch_used_total', help: 'Prefetched blobs a client asked for within a minute of their fill starting',
    registers: [this.registry],
  });
  readonly prefetchSkipped = new Counter({
    name: 'stowage_prefetch_skipped_total', help: 'Blobs layer prefetch left to clients, by reason (max_bytes, budget, circuit-open)',
    labelNames: ['upstream', 'reason'] as const, registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'stowage_auth_failures_total', help: 'Requests whose credentials did not verify (wrong password, invalid or expired token)',
    labelNames: ['scheme'] as const, registers: [this.registry],
  });
  readonly uploadsRefused = new Counter({
    name: 'stowage_uploads_refused_total', help: 'Upload requests refused with 429 because http.limits.uploads were already running',
    registers: [this.registry],
  });

  readonly uploadsPurged = new Counter({
    name: 'stowage_uploads_purged_total', help: 'Abandoned upload sessions removed by upload purging',
    registers: [this.registry],
  });

  readonly policyDecisions = new Counter({
    name: 'stowage_policy_decisions_total',
    help: 'Signature policy decisions by where they were taken (fill, serve, push, import, export, prefetch) and outcome (passed, denied, warned, unavailable: signatures could not be fetched)',
    labelNames: ['where', 'outcome'] as const, registers: [this.registry],
  });
  readonly policyVerifications = new Counter({
    name: 'stowage_policy_verifications_total', help: 'Signature verifications run (results not already remembered), by result (signed, unsigned, error)',
    labelNames: ['result'] as const, registers: [this.registry],
  });
  /** Bytes held by ranged fetches before their turn (upstream/held-budget.ts), read when scraped. */
  private rangedHeldSource: () => number = () => 0;
  readonly rangedHeld = new Gauge({
    name: 'stowage_upstream_ranged_held_bytes', help: 'Bytes of later chunks ranged fetches hold in memory on their way to the spool file now (at most ranges.max_memory, plus one read per paused response)',
    registers: [this.registry], collect: () => { this.rangedHeld.set(this.rangedHeldSource()); },
  });

  /** Where stowage_upstream_ranged_held_bytes reads from. */
  setRangedHeldSource(source: () => number): void { this.rangedHeldSource = source; }

  /** Bytes in ranged fetches' spool files (upstream/spool.ts), read when scraped. */
  private rangedSpooledSource: () => number = () => 0;
  readonly rangedSpooled = new Gauge({
    name: 'stowage_upstream_ranged_spooled_bytes', help: 'Bytes of later chunks waiting for their turn in ranged fetches\' spool files now (disk, ranges.spool_dir)',
    registers: [this.registry], collect: () => { this.rangedSpooled.set(this.rangedSpooledSource()); },
  });

  /** Where stowage_upstream_ranged_spooled_bytes reads from. */
  setRangedSpooledSource(source: () => number): void { this.rangedSpooledSource = source; }

  /** Cache usage and budget, read when /metrics is scraped (lifecycle/ sets the source). */
  private cacheSource: () => Promise<{ usage: number; budget: number }> = async () => ({ usage: 0, budget: 0 });
  readonly cacheBytes = new Gauge({
    name: 'stowage_cache_bytes', help: 'Bytes of cached (never pushed) content in storage', registers: [this.registry],
    collect: async () => { this.cacheBytes.set((await this.cacheSource()).usage); },
  });
  readonly cacheBudget = new Gauge({
    name: 'stowage_cache_budget_bytes', help: 'cache.max_size (0: no budget)', registers: [this.registry],
    collect: async () => { this.cacheBudget.set((await this.cacheSource()).budget); },
  });
  readonly evictions = new Counter({
    name: 'stowage_cache_evictions_total', help: 'Cached images evicted (budget, disk full)', registers: [this.registry],
  });
  readonly evictedBytes = new Counter({
    name: 'stowage_cache_evicted_bytes_total', help: 'Bytes freed by cache eviction', registers: [this.registry],
  });
  readonly gcRuns = new Counter({
    name: 'stowage_gc_runs_total', help: 'Garbage collection runs in this process', registers: [this.registry],
  });
  readonly gcBytesFreed = new Counter({
    name: 'stowage_gc_bytes_freed_total', help: 'Bytes freed by garbage collection in this process', registers: [this.registry],
  });

  setCacheSource(source: () => Promise<{ usage: number; budget: number }>): void { this.cacheSource = source; }

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults) collectDefaultMetrics({ register: this.registry });
  }
}
