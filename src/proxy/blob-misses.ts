/**
 * A blob that is not in storage: single-flight fetches from the upstream (one BlobFill per digest
 * in this process, joined by every request meanwhile), and, with replicas, one per digest across
 * the cluster (cluster-fills.ts): a replica that does not hold the fill streams it from the one
 * that does, or waits for it to be stored, or takes the fetch over when that replica died.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { RegistryError } from '../errors.js';
import type { MetadataIndex } from '../metadata/port.js';
import type { Metrics } from '../metrics.js';
import type { Digest } from '../oci/digest.js';
import type { BlobRange } from '../registry/blob-store.js';
import type { LocalRegistry } from '../registry/registry.js';
import { UpstreamError, toRegistryError } from '../upstream/errors.js';
import type { HeldBudget } from '../upstream/held-budget.js';
import type { SpoolDir } from '../upstream/spool.js';
import { fetchBlob } from '../upstream/ranged-body.js';
import { BlobFill } from './blob-fill.js';
import { LEASE_MS, type ClusterFills } from './cluster-fills.js';
import type { Route } from './routing.js';

/** What a miss turned into: a fill in this process, the blob stored meanwhile, or another replica's fill. */
export type Miss = { kind: 'fill'; fill: BlobFill } | { kind: 'stored'; size: number } | { kind: 'peer'; owner: string };

export interface MissDeps {
  registry: LocalRegistry;
  metadata: MetadataIndex;
  log: Logger;
  metrics?: Metrics;
  cluster?: ClusterFills;
  /** The process's budget for ranged chunks held before their turn (ranges.max_memory). */
  rangedBudget?: HeldBudget;
  /** ranges.spool_dir: where ranged fetches' later chunks wait for their turn. */
  spoolDir?: SpoolDir;
}

const POLL_MS = 200;
/** How long a request follows another replica's fetch before giving up with 503. */
const PEER_WAIT_MS = LEASE_MS + 60_000;

export class BlobMisses {
  private readonly misses = new Map<string, Promise<Miss>>();
  /** Fills running in this process, for peers that stream them (http/peer.ts). */
  private readonly running = new Map<string, BlobFill>();
  /** The missing spool directory is logged once, not per fill. */
  private spoolWarned = false;

  constructor(private readonly deps: MissDeps) {}

  /** True while this process is fetching digest (or finding out who does). */
  has(digest: Digest): boolean { return this.misses.has(digest); }

  /** The miss in progress for digest, if any, for a request to join. */
  joining(digest: Digest): Promise<Miss> | undefined { return this.misses.get(digest); }

  /** Starts resolving a miss: claims the fetch (cluster-wide when there are replicas) and fetches. */
  start(route: Route, digest: Digest): Promise<Miss> {
    const started = this.claimAndFetch(route, digest);
    this.misses.set(digest, started);
    started.then((m) => { if (m.kind !== 'fill') this.misses.delete(digest); }, () => this.misses.delete(digest));
    return started;
  }

  private async claimAndFetch(route: Route, digest: Digest): Promise<Miss> {
    const { cluster, registry } = this.deps;
    const claim = cluster ? await cluster.claim(digest) : undefined;
    if (claim && !claim.mine) return { kind: 'peer', owner: claim.owner };
    try {
      // Stored by another replica between the caller's look and the claim: nothing to fetch.
      const stored = cluster ? await registry.blobs.dataSize(digest) : undefined;
      if (stored !== undefined) {
        claim?.release();
        return { kind: 'stored', size: stored };
      }
      const fill = await this.fetch(route, digest);
      this.running.set(digest, fill);
      void fill.done.catch(() => undefined).finally(() => {
        this.running.delete(digest);
        this.misses.delete(digest);
        claim?.release();
      });
      return { kind: 'fill', fill };
    } catch (err) {
      claim?.release();
      throw err;
    }
  }

  private async fetch(route: Route, digest: Digest): Promise<BlobFill> {
    const { registry, metadata, log, metrics } = this.deps;
    const upstream = route.upstream.config;
    const ranging = upstream.ranging;
    let res;
    let size: number | undefined;
    let ranged: { parallel: boolean; chunks: number; connections: number } | undefined;
    try {
      if (ranging?.enabled) {
        // The fill's log line reads this object when it ends; the ranged body fills it in.
        const planned = { parallel: false, chunks: 1, connections: 1 };
        const answer = await fetchBlob(route.upstream.client, route.remoteRepo, digest, {
          ...ranging, ...(this.deps.rangedBudget ? { budget: this.deps.rangedBudget } : {}), ...(this.deps.spoolDir ? { spoolDir: this.deps.spoolDir } : {}),
        }, {
          onNoSpool: (reason) => {
            if (this.spoolWarned) return;
            this.spoolWarned = true;
            log.warn({ dir: this.deps.spoolDir?.dir, reason }, 'ranged fetch: no spool file can be made in ranges.spool_dir; big blobs come in one request after their first chunk');
          },
          onFallback: (reason, detail) => {
            metrics?.rangedFallbacks.inc({ upstream: upstream.name, reason });
            log.info({ digest, repo: route.cacheRepo, reason, detail }, 'ranged fetch gave up; the rest comes from one GET');
          },
          onPlan: (plan) => {
            Object.assign(planned, plan);
            if (plan.parallel) metrics?.rangedFills.inc({ upstream: upstream.name });
          },
        });
        res = answer.response;
        size = answer.size;
        if (answer.ranged) ranged = planned;
      } else {
        res = await route.upstream.client.blob(route.remoteRepo, digest);
        const length = res.headers['content-length'];
        size = typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined;
      }
    } catch (err) {
      throw err instanceof UpstreamError ? toRegistryError(err) : err;
    }
    if (res.status === 404 || !res.body) {
      res.body?.destroy();
      throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
    }
    // Until the fill's pump listens, an error on the body (a reset right after the headers)
    // must not go unheard and crash the process; the pump then finds the body destroyed.
    res.body.on('error', () => undefined);
    const fill = new BlobFill(digest, route.cacheRepo, upstream.name, size, {
      storage: registry.storage, blobs: registry.blobs, metadata, log, events: registry.events,
      onUpstreamBytes: (n) => metrics?.upstreamBytes.inc({ upstream: upstream.name }, n),
      onMismatch: () => {
        metrics?.digestMismatch.inc({ upstream: upstream.name });
        // A mirror that served wrong bytes is skipped from now on (its breaker opens).
        route.upstream.client.distrust?.(res.servedBy, 'digest mismatch');
      },
    });
    let writer;
    try {
      writer = await fill.open();
    } catch (err) {
      res.body.destroy();
      throw err;
    }
    void fill.run({ size, body: res.body, ...(ranged ? { ranged } : {}) }, writer);
    return fill;
  }

  /**
   * Another replica holds the fetch: its size, when it still has the fill; 'stored' once the blob
   * is in storage; or, when that replica cannot be reached (it died), this process takes the fetch
   * over once the lease has lapsed. Gives up after a lease's lifetime.
   */
  async fromPeer(route: Route, digest: Digest, owner: string): Promise<Exclude<Miss, { kind: 'peer' }> | { kind: 'streaming'; owner: string; size: number | undefined }> {
    const { cluster, registry, log } = this.deps;
    // Long enough for the holder's upstream to answer (its headers timeout is 30 s by default);
    // a dead holder's lease lapses within LEASE_MS, and then this process takes over.
    const deadline = Date.now() + PEER_WAIT_MS;
    let current = owner;
    for (;;) {
      const stored = await registry.blobs.dataSize(digest);
      if (stored !== undefined) return { kind: 'stored', size: stored };
      const found = await cluster!.peerSize(current, digest).then((f) => f ?? 'none' as const, (err: unknown) => {
        log.warn({ peer: current, digest, err: (err as Error).message }, 'the replica fetching this blob does not answer; taking over once its lease lapses');
        return 'unreachable' as const;
      });
      if (typeof found === 'object') return { kind: 'streaming', owner: current, size: found.size };
      if (Date.now() > deadline) throw new RegistryError('UNAVAILABLE', 'another replica is fetching this blob and could not be reached', { status: 503 });
      // The holder has no fill yet (still waiting for its upstream) or cannot be reached.
      await sleep(found === 'unreachable' ? POLL_MS * 2 : POLL_MS / 2);
      // The holder finished (stored, looked at above), failed, or died: take it or follow the new holder.
      const next = await (this.misses.get(digest) ?? this.start(route, digest));
      if (next.kind !== 'peer') return next;
      current = next.owner;
    }
  }

  /**
   * Opens another replica's fill for a client. When that replica has no fill any more or does not
   * answer (it finished, failed, died, or refuses for a moment), the stored copy, once there is
   * one: not a 404 for a blob still being fetched, and 503 if the fetch ended without storing it.
   */
  async openPeer(owner: string, digest: Digest, range?: BlobRange): Promise<Readable> {
    const { registry } = this.deps;
    if (range) return registry.blobs.open(digest, range);
    const peer = await this.deps.cluster!.openPeer(owner, digest).catch((err: unknown) => {
      this.deps.log.warn({ peer: owner, digest, err: (err as Error).message }, 'could not stream a blob from the replica fetching it; waiting for it in storage');
      return undefined;
    });
    if (peer) return peer.body;
    await this.whenStored(digest);
    return registry.blobs.open(digest);
  }

  /** Waits until digest is in storage (another replica's fill committed); its size. */
  async whenStored(digest: Digest): Promise<number> {
    const { registry, metadata } = this.deps;
    for (;;) {
      const size = await registry.blobs.dataSize(digest);
      if (size !== undefined) return size;
      if (!this.misses.has(digest) && (await metadata.leases.holder(`fill:${digest}`)) === undefined) {
        throw new RegistryError('UNAVAILABLE', 'the replica fetching this blob stopped before storing it', { status: 503 });
      }
      await sleep(POLL_MS);
    }
  }

  /** A fill this process is running, for a peer to stream (http/peer.ts). */
  runningFill(digest: string): BlobFill | undefined {
    const fill = this.running.get(digest);
    return fill && (fill.state === 'filling' || fill.state === 'verified') ? fill : undefined;
  }

  /** Resolves once no upstream blob fill is starting or running (each committed or failed). */
  async settled(): Promise<void> {
    while (this.misses.size > 0) {
      await Promise.allSettled([...this.misses.values()].map((p) => p.then((m) => (m.kind === 'fill' ? m.fill.done : undefined))));
    }
  }

  /** Cuts every running fill (the drain time is up); nothing partial is committed. */
  abort(): void {
    for (const fill of this.running.values()) fill.abort();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
