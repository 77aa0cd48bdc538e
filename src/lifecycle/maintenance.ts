/**
 * Everything that keeps storage bounded, built from the config: the cache budget (evict.ts),
 * garbage collection (gc.ts, periodic when storage.maintenance.gc.enabled), upload purging, and
 * a full disk turning into an eviction. Built with the other services (the CLI tools use the
 * same objects); started only by the server, and run by one replica at a time (leadership.ts).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { MetadataIndex } from '../metadata/port.js';
import type { Metrics } from '../metrics.js';
import type { LocalRegistry } from '../registry/registry.js';
import { CacheEvictor } from './evict.js';
import { CacheExpiry } from './expiry.js';
import { GarbageCollector } from './gc.js';
import { Leadership } from './leadership.js';
import { Pins } from './pins.js';
import { BlobSweeper } from './sweep.js';
import { UploadPurger } from './upload-purge.js';

export class Maintenance {
  readonly sweeper: BlobSweeper;
  readonly pins: Pins;
  readonly evictor: CacheEvictor;
  readonly gc: GarbageCollector;
  readonly purger: UploadPurger;
  readonly expiry: CacheExpiry;
  readonly leadership: Leadership;
  private gcTimer: NodeJS.Timeout | undefined;

  /** `holder` names this process in the maintenance lease. */
  constructor(private readonly config: Config, registry: LocalRegistry, metadata: MetadataIndex, private readonly log: Logger, metrics?: Metrics, holder = 'local') {
    this.leadership = new Leadership(metadata.leases, holder, log);
    const cache = config.cache;
    this.sweeper = new BlobSweeper(registry, metadata, log);
    this.pins = new Pins(cache?.pin ?? [], metadata);
    this.evictor = new CacheEvictor(registry, metadata, this.sweeper, this.pins, log, {
      maxBytes: cache?.max_size ?? 0,
      lowWatermark: cache?.low_watermark ?? 0.9,
      minAgeMs: cache?.min_age ?? 60_000,
      holdMs: cache?.pull_hold ?? 60_000,
      intervalMs: cache?.interval ?? 30_000,
    }, {
      onEvicted: (images, bytes) => { metrics?.evictions.inc(images); metrics?.evictedBytes.inc(bytes); },
    });
    this.gc = new GarbageCollector(registry, metadata, this.sweeper, log, (r) => { metrics?.gcRuns.inc(); metrics?.gcBytesFreed.inc(r.bytesFreed); });
    this.purger = new UploadPurger({
      storage: registry.storage, metadata, uploads: registry.uploads, log, onPurged: (n) => metrics?.uploadsPurged.inc(n),
    }, config.storage.maintenance.uploadpurging);
    this.expiry = new CacheExpiry(config.upstreams, this.evictor, this.sweeper, metadata, log);
    metrics?.setCacheSource(async () => ({ usage: await metadata.cachedBytes(), budget: cache?.max_size ?? 0 }));
  }

  /** The storage driver ran out of space (every failing write says so: one eviction pass at a time). */
  diskFull(): void {
    if (this.evictor.busy) return;
    this.log.warn('storage is full: evicting cached images');
    void this.evictor.diskFull();
  }

  async start(): Promise<void> {
    await this.leadership.start();
    const gate = () => this.leadership.isLeader();
    this.evictor.start(gate);
    this.purger.start(gate);
    this.expiry.start(gate);
    const gc = this.config.storage.maintenance.gc;
    if (gc.enabled && gc.intervalMs > 0) {
      this.gcTimer = setInterval(() => {
        if (!gate()) return;
        void this.gc.run({ dryRun: false, deleteUntagged: gc.deleteUntagged, graceMs: gc.graceMs })
          .catch((err: unknown) => this.log.error({ err }, 'garbage collection failed'));
      }, gc.intervalMs);
      this.gcTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.evictor.stop();
    this.purger.stop();
    this.expiry.stop();
    if (this.gcTimer) clearInterval(this.gcTimer);
    await this.leadership.stop();
  }
}
