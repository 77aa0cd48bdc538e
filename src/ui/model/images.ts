/**
 * Every tagged image with its stored size, for the cache view's "largest" and "pinned" lists:
 * one pass over all tags and the reference index, kept for a minute (it costs a few hundred
 * milliseconds at tens of thousands of tags, and sizes change slowly).
 */
import type { UiContext } from './context.js';
import { bytesOf, imageParts, sizesOf } from './parts.js';

export interface ImageSize { repo: string; digest: string; tags: string[]; bytes: number }

const PAGE = 2000;
const KEEP_MS = 60_000;

export class ImageSizes {
  private cached: { at: number; images: Promise<ImageSize[]> } | undefined;

  constructor(private readonly ctx: UiContext) {}

  all(now = Date.now()): Promise<ImageSize[]> {
    if (!this.cached || now - this.cached.at > KEEP_MS) {
      const images = this.compute();
      this.cached = { at: now, images };
      images.catch(() => { this.cached = undefined; });
    }
    return this.cached.images;
  }

  private async compute(): Promise<ImageSize[]> {
    const byImage = new Map<string, ImageSize>();
    let after: { repo: string; tag: string } | undefined;
    for (;;) {
      const page = await this.ctx.browse.tagPointers(after, PAGE);
      for (const p of page) {
        const key = `${p.repo}@${p.digest}`;
        const image = byImage.get(key);
        if (image) image.tags.push(p.tag); else byImage.set(key, { repo: p.repo, digest: p.digest, tags: [p.tag], bytes: 0 });
      }
      if (page.length < PAGE) break;
      after = page[page.length - 1]!;
    }
    const images = [...byImage.values()];
    const parts = await imageParts(this.ctx.browse, [...new Set(images.map((i) => i.digest))]);
    const sizes = await sizesOf(this.ctx.browse, [...parts.values()].flatMap((s) => [...s]));
    for (const i of images) i.bytes = bytesOf(parts.get(i.digest) ?? [], sizes).bytes;
    return images;
  }
}
