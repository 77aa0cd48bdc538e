/**
 * registry:2's proxy.ttl (and upstreams[].ttl): cached images not pulled for that long are
 * removed, whole, as the cache budget removes them (evict.ts): manifests, tags, tag-cache entries,
 * then the blobs nothing else needs. stowage counts from the last pull, not from the first fetch,
 * so content in use stays; pushed and pinned content never expires; and unlike registry:2's TTL
 * (its issue #2367) a blob that another image still uses is never deleted.
 */
import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/schema.js';
import type { MetadataIndex } from '../metadata/port.js';
import type { Digest } from '../oci/digest.js';
import type { CacheEvictor } from './evict.js';
import type { BlobSweeper } from './sweep.js';

export class CacheExpiry {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly upstreams: UpstreamConfig[],
    private readonly evictor: CacheEvictor,
    private readonly sweeper: BlobSweeper,
    private readonly metadata: MetadataIndex,
    private readonly log: Logger,
  ) {}

  /** How often to sweep: half the shortest TTL, between 1 s and 1 h; undefined if nothing expires. */
  get intervalMs(): number | undefined {
    const ttls = this.upstreams.map((u) => u.contentTtlMs).filter((t) => t > 0);
    if (ttls.length === 0) return undefined;
    return Math.min(Math.max(Math.min(...ttls) / 2, 1_000), 3_600_000);
  }

  start(gate: () => boolean = () => true): void {
    const every = this.intervalMs;
    if (every === undefined) return;
    this.timer = setInterval(() => { if (gate()) void this.sweep().catch((err: unknown) => this.log.error({ err }, 'cache expiry failed')); }, every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Removes expired images; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const ttl = new Map(this.upstreams.filter((u) => u.contentTtlMs > 0).map((u) => [u.name, u.contentTtlMs]));
    if (ttl.size === 0) return 0;
    await this.metadata.flushAccessTimes();
    let images = 0;
    let bytes = 0;
    const expired = [];
    for (const image of await this.evictor.images()) {
      const limit = ttl.get(image.repo.slice(0, image.repo.indexOf('/')));
      if (limit !== undefined && !image.pinned && (await this.evictor.isIdle(image.repo, image.lastAccess, now - limit))) expired.push(image);
    }
    // Grouped by TTL: each group is evicted with its own "not used since".
    for (const limit of new Set(expired.map((i) => ttl.get(i.repo.slice(0, i.repo.indexOf('/')))!))) {
      const group = expired.filter((i) => ttl.get(i.repo.slice(0, i.repo.indexOf('/'))) === limit);
      const result = await this.evictor.evictImages(group, now - limit);
      images += result.evicted.length;
      bytes += result.bytesFreed;
    }
    // Cached blobs of those upstreams that no image references any more.
    const shortest = Math.min(...ttl.values());
    for (const b of await this.metadata.unreferencedBlobs(now - shortest, 10_000)) {
      const rec = await this.metadata.blobRecord(b.digest);
      const limit = rec?.upstream ? ttl.get(rec.upstream) : undefined;
      if (b.origin !== 'cached' || limit === undefined) continue;
      bytes += await this.sweeper.remove(b.digest as Digest, { notAfter: now - limit, onlyCached: true });
    }
    if (images > 0 || bytes > 0) this.log.info({ images, bytesFreed: bytes }, 'expired cached content (proxy ttl)');
    return images;
  }
}
