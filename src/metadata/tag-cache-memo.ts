/**
 * The upstream tag cache as the warm path reads it: every GET by tag of a cached image asks it,
 * so each adapter keeps the rows it read in memory (present or absent) and drops them when its
 * change feed says the index changed. A read that raced a change keeps nothing (the generation
 * check), and while the feed is not live every read goes to the index.
 */
import { LRUCache } from 'lru-cache';
import type { ChangeFeed, TagCacheRow } from './port.js';

export class TagCacheMemo {
  private readonly rows = new LRUCache<string, TagCacheRow | false>({ max: 50_000 });

  constructor(private readonly feed: ChangeFeed) {
    feed.subscribe((c) => {
      if (c.kind === 'tagcache') this.forget(c.upstream, c.repo);
      else if (c.kind === 'all') this.rows.clear();
    });
  }

  async read(upstream: string, repo: string, tag: string, load: () => Promise<TagCacheRow | undefined>): Promise<TagCacheRow | undefined> {
    const key = `${upstream} ${repo} ${tag}`;
    const { feed } = this;
    if (feed.live) {
      const hit = this.rows.get(key);
      if (hit !== undefined) return hit || undefined;
    }
    const generation = feed.generation;
    const row = await load();
    if (feed.live && feed.generation === generation) this.rows.set(key, row ?? false);
    return row;
  }

  private forget(upstream: string, repo: string): void {
    const prefix = `${upstream} ${repo} `;
    for (const key of this.rows.keys()) if (key.startsWith(prefix)) this.rows.delete(key);
  }
}
