/**
 * The local registry: pushed and cached content over one StorageDriver, with the metadata index
 * for listings. HTTP routes and the pull-through cache both call this; neither touches storage.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { MetadataIndex } from '../metadata/port.js';
import type { Digest } from '../oci/digest.js';
import type { RepoName } from '../oci/reference.js';
import { isPathNotFound, type StorageDriver } from '../storage/driver.js';
import { repoPath } from '../storage/layout.js';
import { BlobStore } from './blob-store.js';
import { LocalRepositories } from './local-repositories.js';
import { ManifestStore } from './manifest-store.js';
import { reindex, type ReindexResult } from './reindex.js';
import { UploadStore } from './upload-store.js';
import { BLOB_MEDIA_TYPE } from './blob-store.js';
import { NO_EVENTS, type EventSink } from '../notify/events.js';

const REINDEX_LEASE = 'reindex';
const REINDEX_LEASE_MS = 30_000;

export interface Page<T> { items: T[]; /** Set when more items follow: the `last` to ask for next. */ next?: string }

export interface ReferrerDescriptor {
  mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string>;
}

export class LocalRegistry {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;
  /** Repositories that hold pushed content (never routed to the default upstream). */
  readonly local: LocalRepositories;
  /**
   * `events`: where pushes, mounts, deletes, fetches (and, from the routes, pulls) are reported;
   * notify/ writes them to the outbox in the same transaction as the content's index rows.
   */
  constructor(readonly storage: StorageDriver, readonly metadata: MetadataIndex, private readonly log: Logger, readonly events: EventSink = NO_EVENTS) {
    this.local = new LocalRepositories(metadata);
    this.blobs = new BlobStore(storage, metadata);
    this.uploads = new UploadStore(storage, metadata, this.blobs, this.local, events);
    this.manifests = new ManifestStore(storage, metadata, this.blobs, this.local, events);
  }

  /** Reindexes when the index is new (first start, or the file was deleted). */
  async ensureIndexed(cachePrefixes: readonly string[] = []): Promise<ReindexResult | undefined> {
    if (await this.metadata.getMeta('indexed_at')) return undefined;
    // Replicas starting together on a new database: one indexes, the others wait for it.
    const holder = randomUUID();
    for (;;) {
      if (await this.metadata.leases.acquire(REINDEX_LEASE, holder, REINDEX_LEASE_MS)) break;
      await new Promise((r) => setTimeout(r, 500));
      if (await this.metadata.getMeta('indexed_at')) return undefined;
    }
    const renew = setInterval(() => void this.metadata.leases.acquire(REINDEX_LEASE, holder, REINDEX_LEASE_MS).catch(() => undefined), REINDEX_LEASE_MS / 3);
    try {
      if (await this.metadata.getMeta('indexed_at')) return undefined;
      return await this.reindex(cachePrefixes);
    } finally {
      clearInterval(renew);
      await this.metadata.leases.release(REINDEX_LEASE, holder);
    }
  }

  /** Rebuilds the index from storage; `cachePrefixes` are the upstream names (see reindex.ts). */
  reindex(cachePrefixes: readonly string[] = []): Promise<ReindexResult> {
    this.local.reset();
    return reindex(this.storage, this.metadata, this.blobs, this.log, cachePrefixes);
  }

  /**
   * True when `digest` may be served from `repo`: linked there, or referenced by a manifest that
   * repo holds. Content addressing alone is not enough: a blob pushed to one repository must not
   * be readable through another by guessing its digest.
   */
  isReferencedIn(repo: RepoName, digest: Digest): Promise<boolean> {
    return this.metadata.isReferencedIn(repo, digest);
  }

  /**
   * A read of repo, remembered (and shared with every replica through the index, batched): a pull
   * in progress, between two layers of a big image say, keeps its images from eviction even while
   * no manifest is being read.
   */
  noteUse(repo: RepoName): void {
    this.metadata.noteRepositoryUse(repo, Date.now());
  }

  usedSince(repo: string, time: number): Promise<boolean> {
    return this.metadata.repositoryUsedSince(repo, time);
  }

  async tags(repo: RepoName, n: number, last: string): Promise<Page<string>> {
    return page(await this.metadata.listTags(repo, last, n + 1), n);
  }

  /** A repository exists once something was pushed or cached in it (it has manifests or layers). */
  async repositoryExists(repo: RepoName): Promise<boolean> {
    for (const marker of ['_manifests', '_layers']) {
      try {
        await this.storage.stat(`${repoPath(repo)}/${marker}`);
        return true;
      } catch (e) {
        if (!isPathNotFound(e)) throw e;
      }
    }
    return false;
  }

  async catalog(n: number, last: string): Promise<Page<string>> {
    return page(await this.metadata.catalog(last, n + 1), n);
  }

  async referrers(repo: RepoName, subject: Digest, artifactType?: string): Promise<ReferrerDescriptor[]> {
    const out: ReferrerDescriptor[] = [];
    for (const r of await this.metadata.listReferrers(repo, subject)) {
      if (artifactType !== undefined && r.artifact_type !== artifactType) continue;
      const d: ReferrerDescriptor = { mediaType: r.media_type, digest: r.digest, size: r.size };
      if (r.artifact_type) d.artifactType = r.artifact_type;
      if (r.annotations) d.annotations = JSON.parse(r.annotations) as Record<string, string>;
      out.push(d);
    }
    return out;
  }

  /** Links a blob of `from` into `repo`; false if `from` does not have it. */
  async mount(repo: RepoName, from: RepoName, digest: Digest): Promise<boolean> {
    await this.local.mark(repo);
    const size = await this.blobs.sizeIn(from, digest);
    if (size === undefined) return false;
    // Linked into a repository that holds pushed content: pushed content from now on, so the
    // cache budget never evicts it (even if it was first fetched from an upstream).
    await this.metadata.write((w) => w.recordBlob(digest, size, 'local'));
    await this.blobs.link(repo, digest);
    await this.metadata.write((w) => {
      this.events.record({ action: 'mount', target: { kind: 'blob', repository: repo, fromRepository: from, digest, size, mediaType: BLOB_MEDIA_TYPE } }, w);
    });
    return true;
  }
}

function page(rows: string[], n: number): Page<string> {
  if (n === 0) return { items: [] };
  if (rows.length > n) return { items: rows.slice(0, n), next: rows[n - 1] ?? '' };
  return { items: rows };
}
