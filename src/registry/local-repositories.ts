/**
 * Which repositories hold pushed content. A repository becomes local the moment a push touches it
 * (an upload starts, a blob is mounted, a manifest is pushed) and stays local: from then on the
 * default upstream is not consulted for it, so its misses are plain 404s (DESIGN.md "Local stays
 * local"). Storage is the truth: reindex marks every repository outside the cache prefixes.
 */
import type { MetadataIndex } from '../metadata/index.js';
import type { RepoName } from '../oci/reference.js';

export type NewLocalListener = (repo: RepoName) => void;

export class LocalRepositories {
  private readonly listeners: NewLocalListener[] = [];
  /** Names known local; a push to a known name costs no SQLite write. */
  private readonly known = new Set<string>();

  constructor(private readonly metadata: MetadataIndex) {}

  /** Called once per repository, when a push first makes it local. */
  onNewLocal(listener: NewLocalListener): void {
    this.listeners.push(listener);
  }

  mark(repo: RepoName): void {
    if (this.known.has(repo)) return;
    const isNew = this.metadata.markLocal(repo);
    this.known.add(repo);
    if (isNew) for (const l of this.listeners) l(repo);
  }

  has(repo: RepoName): boolean {
    if (this.known.has(repo)) return true;
    if (!this.metadata.isLocal(repo)) return false;
    this.known.add(repo);
    return true;
  }

  /** Reindex cleared the table: forget what this process remembered. */
  reset(): void {
    this.known.clear();
  }
}
