/**
 * Removing one blob's bytes safely while the registry serves, pushes and fills (possibly from
 * another process: `stowage gc` beside a running server). A blob goes only if no manifest held by
 * any repository is it or references it, it was not recorded or used after `notAfter`, and no
 * stream of it is open here. The data is first moved aside, then everything is checked again:
 * a push that started using the blob meanwhile recorded it before looking for it
 * (BlobStore.commitVerified), so the second look sees it and the bytes are put back; a push that
 * looks after the move finds nothing and stores its own copy. The index row goes only if it was
 * not touched after `notAfter` (one conditional DELETE), so it never disappears under a new use.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { MetadataIndex } from '../metadata/port.js';
import type { Digest } from '../oci/digest.js';
import type { LocalRegistry } from '../registry/registry.js';
import { isPathNotFound } from '../storage/driver.js';
import { blobDataPath, STAGING_REPO, uploadDataPath, uploadDir } from '../storage/layout.js';

export interface SweepOptions {
  /** A blob recorded or used after this time stays. */
  notAfter: number;
  /** Only content cached from an upstream (the cache budget); GC takes any unreferenced blob. */
  onlyCached: boolean;
  dryRun?: boolean;
}

export class BlobSweeper {
  constructor(private readonly registry: LocalRegistry, private readonly metadata: MetadataIndex, private readonly log: Logger) {}

  private async unused(digest: Digest, opts: SweepOptions): Promise<{ size: number } | undefined> {
    const rec = await this.metadata.blobRecord(digest);
    if (!rec) return undefined;
    if (opts.onlyCached && rec.origin !== 'cached') return undefined;
    if (rec.lastAccess > opts.notAfter) return undefined;
    if (this.registry.blobs.isBeingRead(digest) || (await this.metadata.isHeldOrReferenced(digest))) return undefined;
    return { size: rec.size };
  }

  /** Bytes freed (0 when the blob stays). */
  async remove(digest: Digest, opts: SweepOptions): Promise<number> {
    const first = await this.unused(digest, opts);
    if (!first) return 0;
    if (opts.dryRun) return first.size;
    const { storage } = this.registry;
    const aside = randomUUID();
    // Set aside under the staging area's _uploads: if this process dies here, upload purging
    // removes the leftover, and reindex never mistakes it for a blob.
    try {
      await storage.move(blobDataPath(digest), uploadDataPath(STAGING_REPO, aside));
    } catch (e) {
      if (!isPathNotFound(e)) throw e;
      await this.metadata.deleteBlobIfIdle(digest, opts.notAfter); // the row outlived its data
      return 0;
    }
    await this.metadata.flushAccessTimes();
    const again = await this.unused(digest, opts);
    if (!again || !(await this.metadata.deleteBlobIfIdle(digest, opts.notAfter))) {
      if ((await this.registry.blobs.dataSize(digest)) === undefined) await storage.move(uploadDataPath(STAGING_REPO, aside), blobDataPath(digest));
      await this.dropAside(aside);
      return 0;
    }
    this.registry.blobs.forgetLinks(digest);
    this.registry.manifests.forget(digest);
    await this.dropAside(aside);
    return again.size;
  }

  private async dropAside(aside: string): Promise<void> {
    try {
      await this.registry.storage.delete(uploadDir(STAGING_REPO, aside));
    } catch (e) {
      if (!isPathNotFound(e)) this.log.warn({ err: e }, 'could not remove a swept blob set aside; upload purging will');
    }
  }
}
