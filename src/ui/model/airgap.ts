/**
 * What `stowage export --since 7d` would carry, before anyone runs it: the images bundle/select.ts
 * picks (the same call the export makes), and the bytes of everything they consist of, referrers
 * included, each blob counted once as the bundle stores it. Kept for a minute per `since`: the
 * selection reads every tag.
 */
import { ImageSelector } from '../../bundle/select.js';
import { formatImageName } from '../../bundle/layout.js';
import type { Digest } from '../../oci/digest.js';
import type { Viewer } from '../access.js';
import type { UiContext } from './context.js';
import { bytesOf, imageParts, sizesOf } from './parts.js';

export interface AirGapView {
  since: string;
  sinceTime: number;
  images: Array<{ name: string; repo: string; digest: string | undefined; bytes: number; missing: number }>;
  /** Bytes of the bundle (each blob once), from what is stored here. */
  bytes: number;
  blobs: number;
  /** Parts not stored here: the export fetches them through the cache, or fails without an upstream. */
  missing: number;
  computedAt: number;
}

const KEEP_MS = 60_000;

export class AirGapPreview {
  private readonly cached = new Map<number, { at: number; view: Promise<AirGapView> }>();

  constructor(private readonly ctx: UiContext) {}

  async view(viewer: Viewer, since: string, sinceMs: number, now = Date.now()): Promise<AirGapView> {
    // Cached per whole minute of `since`, so repeated views of "7d" share one computation.
    const key = Math.floor((now - sinceMs) / 60_000);
    let entry = this.cached.get(key);
    if (!entry || now - entry.at > KEEP_MS) {
      this.cached.clear();
      entry = { at: now, view: this.compute(since, now - sinceMs, now) };
      this.cached.set(key, entry);
      entry.view.catch(() => this.cached.delete(key));
    }
    const all = await entry.view;
    const images = all.images.filter((i) => viewer.mayPull(i.repo));
    if (images.length === all.images.length) return all;
    return { ...all, ...await this.totals(images), images };
  }

  private async compute(since: string, sinceTime: number, now: number): Promise<AirGapView> {
    const { registry, router } = this.ctx;
    const selection = await new ImageSelector(registry, registry.metadata, router).select({ since: sinceTime });
    const images: AirGapView['images'] = [];
    for (const s of selection.images) {
      const digest = s.name.digest ?? (s.name.tag ? await registry.manifests.resolve(s.name.repo, { kind: 'tag', tag: s.name.tag }) : undefined);
      images.push({ name: formatImageName(s.name), repo: s.name.repo, digest: digest as Digest | undefined, bytes: 0, missing: 0 });
    }
    return { since, sinceTime, images, ...await this.totals(images), computedAt: now };
  }

  /** Per-image sizes (filled in) and the bundle's totals. */
  private async totals(images: AirGapView['images']): Promise<{ bytes: number; blobs: number; missing: number }> {
    const all = new Set<string>();
    for (const repo of new Set(images.map((i) => i.repo))) {
      const mine = images.filter((i) => i.repo === repo && i.digest !== undefined);
      const parts = await imageParts(this.ctx.browse, mine.map((i) => i.digest!), repo);
      const sizes = await sizesOf(this.ctx.browse, [...parts.values()].flatMap((s) => [...s]));
      for (const i of mine) {
        const set = parts.get(i.digest!) ?? new Set<string>();
        Object.assign(i, bytesOf(set, sizes));
        for (const d of set) all.add(d);
      }
    }
    const sizes = await sizesOf(this.ctx.browse, all);
    const { bytes, missing } = bytesOf(all, sizes);
    return { bytes, blobs: all.size, missing };
  }
}
