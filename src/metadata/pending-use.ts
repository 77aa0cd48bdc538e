/**
 * Uses the index learns of by the thousand per second (a blob or manifest read, a repository
 * pulled from) are remembered here and written in batches, never one write per request. Both
 * adapters share it. Recent repository reads also stay in memory, so this process answers
 * "used since?" for itself at once, before any flush.
 */
import { LRUCache } from 'lru-cache';

export class PendingUse {
  private access = new Map<string, number>();
  private repos = new Map<string, number>();
  private readonly recentRepos = new LRUCache<string, number>({ max: 20_000 });

  touch(digest: string, at = Date.now()): void { this.access.set(digest, at); }

  useRepository(repo: string, at: number): void {
    this.repos.set(repo, at);
    this.recentRepos.set(repo, at);
  }

  repositoryUsedSince(repo: string, since: number): boolean {
    return (this.recentRepos.get(repo) ?? 0) > since;
  }

  /** The access times to write now (and forgets them). */
  takeAccess(): Array<[string, number]> {
    if (this.access.size === 0) return [];
    const entries = [...this.access];
    this.access = new Map();
    return entries;
  }

  takeRepositoryUse(): Array<[string, number]> {
    if (this.repos.size === 0) return [];
    const entries = [...this.repos];
    this.repos = new Map();
    return entries;
  }
}
