/**
 * The cache budget: cached content (never pushed content) is kept under max_size. Once usage
 * passes it, images are evicted least recently used first until usage is below low_watermark of
 * max_size, in the background while serving, at start-up, and when the disk fills up (ENOSPC).
 *
 * An image is a cached manifest that is not a child (or referrer) of another manifest of its
 * cache repository: an index goes with its children, its referrers and its tags (tag-cache
 * entries included). Then its blobs go unless something else still needs them: a manifest of any
 * repository referencing them (a kept, pinned or pushed image: registry:2's proxy.ttl deletes blobs
 * other repositories still use, its issue #2367), pushed content (never evicted), a read in
 * progress, or a use within min_age. An image is not evicted at all while its manifests or its
 * repository were read within max(min_age, pull_hold): the hold is what keeps a pull in progress
 * whole whatever min_age says (min_age 0 included), since a pull's requests for its layers may
 * come any time after its manifest GET (every request through the cache, and every blob stream
 * while it lasts, notes a use of the repository: proxy/pull-hold.ts; cluster-wide with replicas).
 * An image also goes in two steps (evictImages), so a pull that started just before is not cut
 * off either. Removal of bytes itself is sweep.ts's.
 */
import type { Logger } from 'pino';
import type { MetadataIndex } from '../metadata/port.js';
import type { Digest } from '../oci/digest.js';
import type { RepoName, Tag } from '../oci/reference.js';
import { RegistryError } from '../errors.js';
import type { LocalRegistry } from '../registry/registry.js';
import type { Pins } from './pins.js';
import type { BlobSweeper } from './sweep.js';

const SHORTFALL_LOG_MS = 60_000;
/** Between untagging images and removing them: requests already under way show up in this time. */
const DRAIN_MS = 1_000;
const MAX_ROUNDS = 4;

export interface BudgetOptions {
  /** Bytes of cached content allowed (0: no budget; eviction still runs when the disk is full). */
  maxBytes: number;
  /** Fraction of maxBytes eviction goes down to. */
  lowWatermark: number;
  minAgeMs: number;
  /** cache.pull_hold: an image whose repository was used within this is never evicted, whatever minAgeMs. */
  holdMs?: number;
  intervalMs: number;
}

export interface CachedImage {
  repo: string;
  digest: string;
  tags: string[];
  lastAccess: number;
  bytes: number;
  pinned: boolean;
}

export interface EvictionReport {
  reason: string;
  images: Array<{ repo: string; digest: string; tags: string[] }>;
  bytesFreed: number;
  usageBefore: number;
  usageAfter: number;
}

export interface EvictorEvents {
  onEvicted?: (images: number, bytes: number) => void;
}

export class CacheEvictor {
  private running: Promise<EvictionReport | undefined> | undefined;
  private lastShortfallLog = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly registry: LocalRegistry,
    private readonly metadata: MetadataIndex,
    private readonly sweeper: BlobSweeper,
    private readonly pins: Pins,
    private readonly log: Logger,
    readonly options: BudgetOptions,
    private readonly events: EvictorEvents = {},
  ) {}

  usage(): Promise<number> { return this.metadata.cachedBytes(); }

  /** An eviction pass is running. */
  get busy(): boolean { return this.running !== undefined; }

  /** `gate`: false while another replica runs the duties (lifecycle/leadership.ts). */
  start(gate: () => boolean = () => true): void {
    if (this.options.maxBytes > 0 && gate()) void this.check('start-up');
    if (this.options.maxBytes > 0 && this.options.intervalMs > 0) {
      this.timer = setInterval(() => { if (gate()) void this.check('over budget'); }, this.options.intervalMs);
      this.timer.unref();
    }
  }

  stop(): void { if (this.timer) clearInterval(this.timer); }

  /** Evicts if usage is over the budget; resolves when done (or at once when within it). */
  async check(reason: string): Promise<EvictionReport | undefined> {
    if (this.options.maxBytes <= 0 || (await this.usage()) <= this.options.maxBytes) return undefined;
    return this.enforce(reason, this.options.maxBytes * this.options.lowWatermark);
  }

  /** The disk is full: free a share of the cache whatever the budget says. */
  async diskFull(): Promise<EvictionReport | undefined> {
    const usage = await this.usage();
    const budget = this.options.maxBytes > 0 ? Math.min(usage, this.options.maxBytes) : usage;
    return this.enforce('disk full', budget * Math.min(this.options.lowWatermark, 0.9));
  }

  /** Evicts until cached usage is at most `target` bytes; one pass at a time. */
  enforce(reason: string, target: number): Promise<EvictionReport | undefined> {
    this.running ??= this.evict(reason, target)
      .catch((err: unknown) => { this.log.error({ err }, 'eviction failed'); return undefined; })
      .finally(() => { this.running = undefined; });
    return this.running;
  }

  /** Every cached image, with what it holds and when it was last used. */
  async images(): Promise<CachedImage[]> {
    const pinned = await this.pins.matcher();
    const out: CachedImage[] = [];
    const tagsByRepo = new Map<string, Array<{ tag: string; digest: string }>>();
    for (const { repo, digest } of await this.metadata.cachedImages()) {
      let repoTags = tagsByRepo.get(repo);
      if (!repoTags) tagsByRepo.set(repo, repoTags = await this.metadata.tagsOf(repo));
      const tags = repoTags.filter((t) => t.digest === digest).map((t) => t.tag);
      const { lastAccess, bytes } = await this.measure(digest);
      out.push({ repo, digest, tags, lastAccess, bytes, pinned: pinned(repo, tags, digest) });
    }
    return out;
  }

  /** Last use of the image (its manifests: a client pulling one platform touches the child) and its bytes. */
  private async measure(top: string): Promise<{ lastAccess: number; bytes: number }> {
    let lastAccess = 0;
    let bytes = 0;
    const seen = new Set<string>();
    const queue = [top];
    while (queue.length > 0) {
      const d = queue.pop()!;
      if (seen.has(d)) continue;
      seen.add(d);
      const rec = await this.metadata.blobRecord(d);
      if (rec) { lastAccess = Math.max(lastAccess, rec.lastAccess); bytes += rec.size; }
      for (const r of await this.metadata.manifestRefs(d)) {
        if (r.kind === 'manifest') queue.push(r.digest);
        else if (r.kind !== 'subject' && !seen.has(r.digest)) {
          seen.add(r.digest);
          bytes += (await this.metadata.blobRecord(r.digest))?.size ?? 0;
        }
      }
    }
    return { lastAccess, bytes };
  }

  private async evict(reason: string, target: number): Promise<EvictionReport | undefined> {
    await this.metadata.flushAccessTimes();
    const usageBefore = await this.usage();
    if (usageBefore <= target) return undefined;
    const started = Date.now();
    const report: EvictionReport = { reason, images: [], bytesFreed: 0, usageBefore, usageAfter: usageBefore };
    // min_age is about keeping recently used content; the hold about never cutting a pull: both apply.
    const notAfter = Date.now() - Math.max(this.options.minAgeMs, this.options.holdMs ?? 0);
    // Cached blobs nothing references any more (an image evicted while a layer was being read,
    // a fill whose manifest went meanwhile) are the cheapest to free.
    for (const b of await this.metadata.unreferencedBlobs(notAfter, 10_000)) {
      if (b.origin === 'cached') report.bytesFreed += await this.sweeper.remove(b.digest as Digest, { notAfter, onlyCached: true });
    }
    let usage = await this.usage();
    // In rounds: untag enough images, let requests already under way show up, then remove those
    // nobody touched meanwhile (evictImages); an image a pull reached in between stays.
    for (let round = 0; round < MAX_ROUNDS && usage > target; round++) {
      const victims: CachedImage[] = [];
      let planned = usage;
      const idle: CachedImage[] = [];
      for (const i of await this.images()) if (!i.pinned && (await this.isIdle(i.repo, i.lastAccess, notAfter))) idle.push(i);
      for (const image of idle.sort((a, b) => a.lastAccess - b.lastAccess)) {
        if (planned <= target) break;
        victims.push(image);
        planned -= image.bytes;
      }
      if (victims.length === 0) break;
      const result = await this.evictImages(victims, notAfter);
      report.bytesFreed += result.bytesFreed;
      report.images.push(...result.evicted.map((i) => ({ repo: i.repo, digest: i.digest, tags: i.tags })));
      usage = await this.usage();
      if (result.evicted.length === 0) break;
    }
    report.usageAfter = usage;
    const facts = { reason, evicted: report.images.length, bytesFreed: report.bytesFreed, usageBefore, usageAfter: usage, target: Math.round(target), ms: Date.now() - started };
    if (usage <= target) this.log.info(facts, 'cache eviction');
    else if (report.images.length > 0 || Date.now() - this.lastShortfallLog > SHORTFALL_LOG_MS) {
      // Checked every interval while over budget: said once a minute, not every time.
      this.lastShortfallLog = Date.now();
      this.log.warn(facts, 'cache eviction could not reach its target: the rest is pinned, pushed, or used within min_age (or pull_hold)');
    }
    this.events.onEvicted?.(report.images.length, report.bytesFreed);
    return report;
  }

  /** Neither the image's manifests nor anything in its repository were read after notAfter. */
  async isIdle(repo: string, lastAccess: number, notAfter: number): Promise<boolean> {
    return lastAccess <= notAfter && !(await this.registry.usedSince(repo, notAfter));
  }

  /**
   * Evicts images in two steps. First their tags go (tag-cache entries included): a new pull by
   * tag now goes to the upstream and stores the manifest again. After DRAIN_MS, an image whose
   * repository was read meanwhile (a client that had the manifest just before, now fetching its
   * layers) stays; the others lose their manifests, checked once more around that, and then the
   * blobs nothing else needs (sweep.ts).
   */
  async evictImages(images: CachedImage[], notAfter: number): Promise<{ evicted: CachedImage[]; bytesFreed: number }> {
    const untagged = Date.now();
    const chosen: CachedImage[] = [];
    for (const image of images) {
      // Looked at again right before: a pull may have started on it since the list was made.
      await this.metadata.flushAccessTimes();
      if (!(await this.isIdle(image.repo, (await this.measure(image.digest)).lastAccess, notAfter))) continue;
      await this.untag(image.repo as RepoName, image.digest as Digest);
      chosen.push(image);
    }
    if (chosen.length > 0) await new Promise((r) => setTimeout(r, DRAIN_MS));
    const evicted: CachedImage[] = [];
    let bytesFreed = 0;
    for (const image of chosen) {
      const freed = await this.removeImage(image.repo as RepoName, image.digest as Digest, notAfter, untagged);
      if (freed === undefined) continue;
      evicted.push(image);
      bytesFreed += freed;
    }
    return { evicted, bytesFreed };
  }

  private async untag(repo: RepoName, top: Digest): Promise<void> {
    const upstream = repo.slice(0, repo.indexOf('/'));
    for (const t of await this.metadata.tagsOf(repo)) {
      if (t.digest !== top) continue;
      await this.registry.manifests.delete(repo, { kind: 'tag', tag: t.tag as Tag }).catch((e: unknown) => {
        if (!(e instanceof RegistryError && e.code === 'MANIFEST_UNKNOWN')) throw e;
      });
    }
    await this.metadata.write((w) => w.deleteTagCacheOf(upstream, repo.slice(upstream.length + 1), top));
  }

  /** Removes an untagged image's manifests, then its blobs; undefined when it was used since `since`. */
  private async removeImage(repo: RepoName, top: Digest, notAfter: number, since: number): Promise<number | undefined> {
    const { registry, metadata } = this;
    if (await registry.usedSince(repo, since)) return undefined;
    const manifests: Digest[] = [];
    const candidates = new Set<string>();
    const queue: string[] = [top];
    while (queue.length > 0) {
      const d = queue.shift()!;
      if (manifests.includes(d as Digest)) continue;
      // A child another manifest of this repository still has stays, with what it references.
      if (d !== top && (await this.heldByAnother(repo, d, manifests))) continue;
      manifests.push(d as Digest);
      candidates.add(d);
      for (const r of await metadata.manifestRefs(d)) {
        if (r.kind === 'manifest') queue.push(r.digest);
        else if (r.kind !== 'subject') candidates.add(r.digest);
      }
      queue.push(...(await metadata.referrerDigests(repo, d)));
    }
    for (const m of manifests) await registry.manifests.unlinkRevision(repo, m);
    if (await registry.usedSince(repo, since)) {
      for (const m of manifests) await registry.manifests.relinkRevision(repo, m);
      return undefined;
    }
    for (const m of manifests) await registry.manifests.forgetRevision(repo, m);
    let freed = 0;
    for (const d of candidates) freed += await this.sweeper.remove(d as Digest, { notAfter, onlyCached: true });
    this.log.debug({ repo, digest: top, manifests: manifests.length, bytesFreed: freed }, 'evicted cached image');
    return freed;
  }

  /** True when a manifest of repo outside `going` (and other than child itself) has child as a child. */
  private async heldByAnother(repo: RepoName, child: string, going: readonly string[]): Promise<boolean> {
    for (const m of await this.metadata.repositoryManifests(repo)) {
      if (going.includes(m.digest) || m.digest === child) continue;
      if ((await this.metadata.manifestRefs(m.digest)).some((r) => r.digest === child && r.kind === 'manifest')) return true;
    }
    return false;
  }
}
