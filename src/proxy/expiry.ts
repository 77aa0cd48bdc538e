/**
 * registry:2's proxy.ttl: cached content of an upstream is kept this long and then removed, so a
 * later request fetches it again. stowage counts from the last read (access times are recorded
 * in batches), not from the first fetch: content in use stays. Pushed content never expires,
 * even when it shares a digest with cached content.
 */
import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/schema.js';
import type { MetadataIndex } from '../metadata/index.js';
import type { Digest } from '../oci/digest.js';
import type { LocalRegistry } from '../registry/registry.js';

export class CacheExpiry {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly upstreams: UpstreamConfig[],
    private readonly registry: LocalRegistry,
    private readonly metadata: MetadataIndex,
    private readonly log: Logger,
  ) {}

  /** How often to sweep: half the shortest TTL, between 1 s and 1 h; undefined if nothing expires. */
  get intervalMs(): number | undefined {
    const ttls = this.upstreams.map((u) => u.contentTtlMs).filter((t) => t > 0);
    if (ttls.length === 0) return undefined;
    return Math.min(Math.max(Math.min(...ttls) / 2, 1_000), 3_600_000);
  }

  start(): void {
    const every = this.intervalMs;
    if (every === undefined) return;
    this.timer = setInterval(() => void this.sweep().catch((err: unknown) => this.log.error({ err }, 'cache expiry failed')), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async sweep(now = Date.now()): Promise<number> {
    this.metadata.flushAccessTimes();
    let removed = 0;
    for (const u of this.upstreams) {
      if (u.contentTtlMs <= 0) continue;
      for (const digest of this.metadata.expiredCachedBlobs(u.name, now - u.contentTtlMs) as Digest[]) {
        await this.registry.blobs.evict(digest);
        this.registry.manifests.forget(digest);
        removed++;
      }
    }
    if (removed > 0) this.log.info({ removed }, 'expired cached content (proxy ttl)');
    return removed;
  }
}
