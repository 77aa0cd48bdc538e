/**
 * Blobs: global content-addressed data under blobs/, made visible to a repository by a link in
 * its _layers/. A blob becomes visible only by an atomic move of already-verified bytes.
 */
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { RegistryError } from '../errors.js';
import type { Change, MetadataIndex, MetadataWriter, Origin } from '../metadata/port.js';
import type { Digest } from '../oci/digest.js';
import type { RepoName } from '../oci/reference.js';
import { InvalidOffsetError, isPathNotFound, type StorageDriver } from '../storage/driver.js';
import { blobDataPath, layerLinkPath } from '../storage/layout.js';
import { deleteIfExists, readLink, writeLink } from './links.js';

export interface BlobRange { start: number; end: number } // inclusive

/** What registry:2 reports as a blob's media type (it does not know better either). */
export const BLOB_MEDIA_TYPE = 'application/octet-stream';

export class BlobStore {
  /**
   * digest -> (repo -> size), for linked blobs. Blobs are immutable, so only removals invalidate:
   * this process's own, and other replicas' through the index's change feed.
   */
  private readonly linkedSizes = new LRUCache<string, Map<string, number>>({ max: 20_000 });
  /** Open readers per digest: eviction and GC never remove a blob while it is being read. */
  private readonly readers = new Map<string, number>();

  constructor(private readonly storage: StorageDriver, private readonly metadata: MetadataIndex) {
    metadata.changes.subscribe((c) => this.onChange(c));
  }

  private onChange(c: Change): void {
    if (c.kind === 'blob') this.linkedSizes.delete(c.digest);
    else if (c.kind === 'link') this.linkedSizes.get(c.digest)?.delete(c.repo);
    else if (c.kind === 'all') this.linkedSizes.clear();
  }

  /** Size of the blob's data, or undefined if the data is not in storage. */
  async dataSize(digest: Digest): Promise<number | undefined> {
    try {
      return (await this.storage.stat(blobDataPath(digest))).size;
    } catch (e) {
      if (isPathNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * Size of a blob as seen from repo: undefined unless it is linked there and its data exists.
   * Counts as a use (a push checking for a blob protects it from GC's grace period on).
   */
  async sizeIn(repo: RepoName, digest: Digest): Promise<number | undefined> {
    const cached = this.metadata.changes.live ? this.linkedSizes.get(digest)?.get(repo) : undefined;
    if (cached !== undefined) {
      this.metadata.touchBlob(digest);
      return cached;
    }
    return this.sizeInUncached(repo, digest);
  }

  /**
   * sizeIn from storage itself, never the cache: what a manifest push checks, since garbage
   * collection (possibly another process) may have removed data this process remembers.
   */
  async sizeInUncached(repo: RepoName, digest: Digest): Promise<number | undefined> {
    const generation = this.metadata.changes.generation;
    const linked = await readLink(this.storage, layerLinkPath(repo, digest));
    const size = linked === digest ? await this.dataSize(digest) : undefined;
    if (size === undefined) {
      this.linkedSizes.get(digest)?.delete(repo);
      return undefined;
    }
    // A removal heard while storage was read may have come after what was read: keep nothing then.
    if (this.metadata.changes.generation === generation) {
      let repos = this.linkedSizes.get(digest);
      if (!repos) this.linkedSizes.set(digest, repos = new Map());
      repos.set(repo, size);
    }
    this.metadata.touchBlob(digest);
    return size;
  }

  /** True while a stream of the blob is open in this process. */
  isBeingRead(digest: Digest): boolean {
    return (this.readers.get(digest) ?? 0) > 0;
  }

  /** Like sizeIn but BLOB_UNKNOWN when absent. */
  async requireIn(repo: RepoName, digest: Digest): Promise<number> {
    const size = await this.sizeIn(repo, digest);
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
    return size;
  }

  async open(digest: Digest, range?: BlobRange, signal?: AbortSignal): Promise<Readable> {
    try {
      const options = range ? { offset: range.start, length: range.end - range.start + 1, signal } : { signal };
      const stream = await this.storage.reader(blobDataPath(digest), options);
      this.metadata.touchBlob(digest);
      this.readers.set(digest, (this.readers.get(digest) ?? 0) + 1);
      stream.once('close', () => {
        const n = (this.readers.get(digest) ?? 1) - 1;
        if (n <= 0) this.readers.delete(digest); else this.readers.set(digest, n);
      });
      return stream;
    } catch (e) {
      if (isPathNotFound(e) || e instanceof InvalidOffsetError) {
        throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
      }
      throw e;
    }
  }

  /** A URL the storage backend serves the blob's bytes from (presigned, SAS, temp URL), if it has one. */
  async redirectURL(digest: Digest): Promise<string | undefined> {
    return this.storage.redirectURL?.(blobDataPath(digest), { method: 'GET' });
  }

  /** Makes a blob whose data exists visible in repo. */
  async link(repo: RepoName, digest: Digest): Promise<void> {
    await writeLink(this.storage, layerLinkPath(repo, digest), digest);
  }

  /**
   * Moves verified bytes from a staging path into blobs/ (no-op if the blob already exists).
   * Recorded (with a fresh access time) before the existence check: a garbage collection that
   * is removing this very blob re-checks the record after moving the data away and puts it back
   * (lifecycle/sweep.ts), or it is gone before the check and the staged bytes are moved in.
   * Recorded again once in place, with `inTransaction` (an event) in the same commit.
   */
  async commitVerified(stagingPath: string, digest: Digest, size: number, origin: Origin, upstream?: string, inTransaction?: (w: MetadataWriter) => void): Promise<void> {
    await this.metadata.write((w) => w.recordBlob(digest, size, origin, upstream));
    if ((await this.dataSize(digest)) === undefined) await this.storage.move(stagingPath, blobDataPath(digest));
    await this.metadata.write((w) => {
      w.recordBlob(digest, size, origin, upstream);
      inTransaction?.(w);
    });
  }

  /** Writes small verified content (a manifest) straight into blobs/, atomically; recorded first as above. */
  async putVerified(digest: Digest, bytes: Buffer, origin: Origin, upstream?: string): Promise<void> {
    await this.metadata.write((w) => w.recordBlob(digest, bytes.length, origin, upstream));
    if ((await this.dataSize(digest)) === undefined) await this.storage.putContent(blobDataPath(digest), bytes);
  }

  async getContent(digest: Digest): Promise<Buffer | undefined> {
    try {
      return await this.storage.getContent(blobDataPath(digest));
    } catch (e) {
      if (isPathNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * Deletes a blob's data (cache expiry). Links to it stay and read as "not here", so the next
   * request fetches it again.
   */
  async evict(digest: Digest): Promise<void> {
    this.forgetLinks(digest);
    await deleteIfExists(this.storage, blobDataPath(digest));
    await this.metadata.write((w) => w.deleteBlob(digest));
  }

  /** Drops what this process remembers about the blob's links (its data is being removed). */
  forgetLinks(digest: Digest): void {
    this.linkedSizes.delete(digest);
  }

  /** Removes the blob from repo (the data stays for other repositories until garbage collection). */
  async unlink(repo: RepoName, digest: Digest): Promise<boolean> {
    this.linkedSizes.get(digest)?.delete(repo);
    const removed = await deleteIfExists(this.storage, layerLinkPath(repo, digest).replace(/\/link$/, ''));
    await this.metadata.write((w) => w.changed({ kind: 'link', repo, digest }));
    return removed;
  }
}
