/**
 * Which repositories hold pushed content. A repository becomes local the moment a push touches it
 * (an upload starts, a blob is mounted, a manifest is pushed) and stays local: from then on the
 * default upstream is not consulted for it, so its misses are plain 404s (DESIGN.md "Local stays
 * local"). Storage is the truth: reindex marks every repository outside the cache prefixes.
 *
 * Asked on every request that could go upstream, so both answers are remembered: "local" for good
 * (until a reindex), "not local" until the index says the name became local (on any replica).
 */
import { LRUCache } from 'lru-cache';
import type { MetadataIndex } from '../metadata/port.js';
import type { RepoName } from '../oci/reference.js';

export type NewLocalListener = (repo: RepoName) => void;

export class LocalRepositories {
  private readonly listeners: NewLocalListener[] = [];
  private readonly known = new Set<string>();
  private readonly notLocal = new LRUCache<string, true>({ max: 50_000 });

  constructor(private readonly metadata: MetadataIndex) {
    metadata.changes.subscribe((c) => {
      if (c.kind === 'local') this.notLocal.delete(c.repo);
      else if (c.kind === 'all') this.reset();
    });
  }

  /** Called once per repository, when a push first makes it local. */
  onNewLocal(listener: NewLocalListener): void {
    this.listeners.push(listener);
  }

  async mark(repo: RepoName): Promise<void> {
    if (this.known.has(repo)) return;
    const isNew = await this.metadata.markLocal(repo);
    this.known.add(repo);
    this.notLocal.delete(repo);
    if (isNew) for (const l of this.listeners) l(repo);
  }

  async has(repo: RepoName): Promise<boolean> {
    if (this.known.has(repo)) return true;
    const feed = this.metadata.changes;
    if (feed.live && this.notLocal.has(repo)) return false;
    const generation = feed.generation;
    if (await this.metadata.isLocal(repo)) {
      this.known.add(repo);
      return true;
    }
    if (feed.live && feed.generation === generation) this.notLocal.set(repo, true);
    return false;
  }

  /** Reindex cleared the table (or changes may have been missed): forget what this process remembered. */
  reset(): void {
    this.known.clear();
    this.notLocal.clear();
  }
}
