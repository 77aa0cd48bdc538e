/**
 * Layer prefetch (issue 17): once an image manifest from an upstream has been served, the blobs it
 * references that are not cached yet are fetched in the background, a few at a time per upstream,
 * through the same single-flight miss registry as client requests (blob-misses.ts): a client's
 * blob request then joins the fill under way, a blob a client is already fetching is not fetched
 * twice, and replicas claim it cluster-wide as for any miss. A fill belongs to no client (see
 * blob-fill.ts), so it runs to the end when the client that asked for the manifest goes away.
 *
 * What is never fetched: anything for an index (a client then asks for one platform's manifest,
 * which prefetches that platform only), blobs the manifest does not reference, blobs held or
 * being fetched, blobs past the manifest's max_bytes, blobs while every endpoint's breaker is
 * open, and blobs that would take cached content over the cache budget: prefetch never makes
 * room for itself by evicting, a client's own requests still do.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { PrefetchConfig } from '../config/schema.js';
import type { MetadataIndex } from '../metadata/port.js';
import type { Metrics } from '../metrics.js';
import type { Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import type { LocalRegistry } from '../registry/registry.js';
import type { BlobMisses } from './blob-misses.js';
import type { Route } from './routing.js';

/** A prefetched blob a client asks for within this time counts as used (stowage_prefetch_used_total). */
const USED_WITHIN_MS = 60_000;
/**
 * A manifest whose blobs were all held is not looked at again for this long: the warm path (the
 * same manifest served thousands of times a second) then pays one map lookup, not a parse and a
 * lookup per blob. A blob gone meanwhile (its image evicted) is fetched when a client asks.
 */
const COMPLETE_TTL_MS = 60_000;

export interface PrefetchDeps {
  registry: LocalRegistry;
  metadata: MetadataIndex;
  misses: BlobMisses;
  log: Logger;
  metrics?: Metrics;
  /** cache.max_size in bytes (0 or absent: no budget). */
  budgetBytes?: number;
}

/** What became of one blob of a manifest. */
export interface PrefetchOutcome {
  digest: Digest;
  size: number;
  status: 'held' | 'fetched' | 'joined' | 'skipped' | 'failed';
  reason?: string;
}

export interface PrefetchOptions {
  /** Ignore enabled and max_bytes (`stowage prefetch` asks for the whole image). */
  whole?: boolean;
}

interface Job { route: Route; digest: Digest; size: number; resolve: (o: PrefetchOutcome) => void }

/** One queue per upstream: `active` fills running, the rest waiting in order. */
interface Queue { active: number; waiting: Job[] }

export class Prefetcher {
  private readonly queues = new Map<string, Queue>();
  /** Prefetched digests -> when their fill started, until a client uses them or a minute passes. */
  private readonly unused = new Map<string, number>();
  /** Bytes of prefetches under way, counted against the cache budget until they are stored. */
  private admittedBytes = 0;
  private stopped = false;
  /** "cacheRepo@manifest digest" of manifests found complete (every blob held). */
  private readonly complete = new LRUCache<string, true>({ max: 10_000, ttl: COMPLETE_TTL_MS, ttlAutopurge: false });
  /**
   * The same keys while their blobs are looked at or fetched: a manifest served again meanwhile
   * (a flood of clients of a cold image) joins that work instead of checking every blob again,
   * which under load queued thousands of file lookups ahead of the prefetch's own.
   */
  private readonly scheduling = new Map<string, Promise<PrefetchOutcome[]>>();

  constructor(private readonly deps: PrefetchDeps) {}

  /** Whether every blob of this manifest was found held (or fetched) lately: nothing to schedule. */
  knownComplete(route: Route, digest: Digest): boolean {
    return this.complete.get(`${route.cacheRepo}@${digest}`) === true;
  }

  /**
   * Schedules the missing blobs of the image manifest `bytes` (stored in route.cacheRepo).
   * Resolves with each blob's outcome once every fill it started has ended; callers serving a
   * client do not wait for it.
   */
  async manifest(route: Route, bytes: Buffer, options: PrefetchOptions = {}, digest?: Digest): Promise<PrefetchOutcome[]> {
    const settings = route.upstream.config.prefetching;
    if (!options.whole && !settings?.enabled) return [];
    const completeKey = digest ? `${route.cacheRepo}@${digest}` : undefined;
    if (!completeKey || options.whole) return this.schedule(route, bytes, options, settings);
    if (this.complete.get(completeKey)) return [];
    const under = this.scheduling.get(completeKey);
    if (under) return under;
    const outcomes = this.schedule(route, bytes, options, settings)
      .then((list) => {
        if (list.every((o) => o.status === 'held' || o.status === 'fetched')) this.complete.set(completeKey, true);
        return list;
      })
      .finally(() => this.scheduling.delete(completeKey));
    this.scheduling.set(completeKey, outcomes);
    return outcomes;
  }

  private async schedule(route: Route, bytes: Buffer, options: PrefetchOptions, settings: Route['upstream']['config']['prefetching']): Promise<PrefetchOutcome[]> {
    let parsed;
    try {
      parsed = parseManifest(bytes);
    } catch {
      return []; // served as stored; nothing to read references from
    }
    if (parsed.hasManifestList || parsed.manifests.length > 0) return [];
    const limit = options.whole ? Infinity : settings!.maxBytes;
    let planned = 0;
    const seen = new Set<string>();
    const outcomes: Array<Promise<PrefetchOutcome>> = [];
    for (const b of parsed.blobs) {
      if (seen.has(b.digest)) continue;
      seen.add(b.digest);
      const digest = b.digest as Digest;
      const skip = (reason: string) => { this.skipped(route, reason); outcomes.push(Promise.resolve({ digest, size: b.size, status: 'skipped', reason })); };
      if (await this.held(route, digest)) { outcomes.push(Promise.resolve({ digest, size: b.size, status: 'held' })); continue; }
      if (this.deps.misses.has(digest)) { outcomes.push(Promise.resolve({ digest, size: b.size, status: 'joined' })); continue; }
      if (planned + b.size > limit) { skip('max_bytes'); continue; }
      planned += b.size;
      outcomes.push(new Promise((resolve) => this.enqueue({ route, digest, size: b.size, resolve }, settings?.concurrency ?? 3)));
    }
    return Promise.all(outcomes);
  }

  /** A client asked for digest: counts a prefetched blob as used when within the minute. */
  noteClientUse(digest: string): void {
    const at = this.unused.get(digest);
    if (at === undefined) return;
    this.unused.delete(digest);
    if (Date.now() - at <= USED_WITHIN_MS) this.deps.metrics?.prefetchUsed.inc();
  }

  /** Stored for this repository already (linked now when stored for another). */
  private async held(route: Route, digest: Digest): Promise<boolean> {
    const { blobs } = this.deps.registry;
    if ((await blobs.sizeIn(route.cacheRepo, digest)) !== undefined) return true;
    if (this.deps.misses.has(digest) || (await blobs.dataSize(digest)) === undefined) return false;
    await blobs.link(route.cacheRepo, digest);
    return true;
  }

  /** Shutting down: blobs still waiting are left to clients (running fills end as they would). */
  stop(): void {
    this.stopped = true;
    for (const q of this.queues.values()) {
      for (const job of q.waiting.splice(0)) {
        job.resolve({ digest: job.digest, size: job.size, status: 'skipped', reason: 'shutdown' });
      }
    }
  }

  private enqueue(job: Job, concurrency: number): void {
    if (this.stopped) { job.resolve({ digest: job.digest, size: job.size, status: 'skipped', reason: 'shutdown' }); return; }
    const name = job.route.upstream.config.name;
    let q = this.queues.get(name);
    if (!q) this.queues.set(name, q = { active: 0, waiting: [] });
    q.waiting.push(job);
    this.pump(name, q, concurrency);
  }

  private pump(name: string, q: Queue, concurrency: number): void {
    while (q.active < concurrency && q.waiting.length > 0) {
      const job = q.waiting.shift()!;
      q.active++;
      void this.run(job).then(job.resolve, (err: unknown) => {
        // A client asking for the blob tries again; a digest mismatch was logged by the fill.
        const reason = err instanceof Error ? err.message : String(err);
        this.deps.log.info({ repo: job.route.cacheRepo, digest: job.digest, err: reason }, 'prefetch of a blob failed');
        job.resolve({ digest: job.digest, size: job.size, status: 'failed', reason });
      })
        .finally(() => {
          q.active--;
          if (q.active === 0 && q.waiting.length === 0) this.queues.delete(name);
          else this.pump(name, q, concurrency);
        });
    }
  }

  /** Runs one job; checked again at its turn, since a client or the budget may have moved meanwhile. */
  private async run(job: Job): Promise<PrefetchOutcome> {
    const { route, digest, size } = job;
    const { misses } = this.deps;
    const done = (status: PrefetchOutcome['status'], reason?: string): PrefetchOutcome => ({ digest, size, status, ...(reason ? { reason } : {}) });
    if (await this.held(route, digest)) return done('held');
    if (misses.has(digest)) return done('joined');
    // Every endpoint refuses calls now: the fill would fail at once and count as another failure.
    if (route.upstream.client.endpoints.every((e) => e.breaker.state() === 'open')) { this.skipped(route, 'circuit-open'); return done('skipped', 'circuit-open'); }
    const budget = this.deps.budgetBytes ?? 0;
    if (budget > 0 && (await this.deps.metadata.cachedBytes()) + this.admittedBytes + size > budget) { this.skipped(route, 'budget'); return done('skipped', 'budget'); }
    this.admittedBytes += size;
    try {
      return await this.fetch(route, digest, size);
    } finally {
      this.admittedBytes -= size;
    }
  }

  private async fetch(route: Route, digest: Digest, size: number): Promise<PrefetchOutcome> {
    const { misses, registry, metrics } = this.deps;
    const done = (status: PrefetchOutcome['status']): PrefetchOutcome => ({ digest, size, status });
    // Looked at again with no await before start(): a client may have started it during the checks.
    if (misses.has(digest)) return done('joined');
    const miss = await misses.start(route, digest);
    if (miss.kind === 'stored') { await registry.blobs.link(route.cacheRepo, digest); return done('held'); }
    if (miss.kind === 'peer') return done('joined'); // another replica fetches it; a client here will follow it
    const upstream = route.upstream.config.name;
    this.unused.delete(digest);
    this.unused.set(digest, Date.now());
    this.pruneUnused();
    metrics?.prefetchBlobs.inc({ upstream });
    await miss.fill.done;
    if (miss.fill.cacheRepo !== route.cacheRepo) await registry.blobs.link(route.cacheRepo, digest);
    metrics?.prefetchBytes.inc({ upstream }, miss.fill.written);
    return done('fetched');
  }

  private skipped(route: Route, reason: string): void {
    this.deps.metrics?.prefetchSkipped.inc({ upstream: route.upstream.config.name, reason });
    this.deps.log.debug({ repo: route.cacheRepo, reason }, 'prefetch skipped a blob');
  }

  private pruneUnused(): void {
    const before = Date.now() - USED_WITHIN_MS;
    for (const [d, at] of this.unused) {
      if (at >= before) break; // insertion order is time order
      this.unused.delete(d);
    }
  }
}
