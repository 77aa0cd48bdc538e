/**
 * Online garbage collection: runs while the registry accepts pushes (registry:2 needs read-only
 * mode for this). With --delete-untagged, manifests of repositories holding pushed content that
 * no tag reaches (directly, as a child of a tagged index, or as a referrer of something reached)
 * lose their revision link; then every blob no manifest of any repository is or references goes.
 * Nothing recorded or used within the grace period before the run started is touched: a push in
 * progress (its blobs uploaded or found, its manifest not yet put) keeps everything it uses.
 * Each removal is checked twice around the act (sweep.ts); a manifest whose tag or use
 * appears meanwhile gets its revision link back.
 */
import type { Logger } from 'pino';
import type { MetadataIndex } from '../metadata/port.js';
import type { Digest } from '../oci/digest.js';
import type { RepoName } from '../oci/reference.js';
import type { LocalRegistry } from '../registry/registry.js';
import { readLink } from '../registry/links.js';
import { revisionLinkPath } from '../storage/layout.js';
import type { BlobSweeper } from './sweep.js';

export interface GcOptions {
  dryRun: boolean;
  deleteUntagged: boolean;
  /** Content recorded or used within this long before the run started is kept (default 10 min). */
  graceMs: number;
}

export interface GcReport {
  manifests: Array<{ repo: string; digest: string }>;
  blobs: number;
  bytesFreed: number;
  dryRun: boolean;
  ms: number;
}

export const DEFAULT_GC_GRACE_MS = 10 * 60_000;
const BATCH = 1000;

export class GarbageCollector {
  private running: Promise<GcReport> | undefined;

  constructor(
    private readonly registry: LocalRegistry,
    private readonly metadata: MetadataIndex,
    private readonly sweeper: BlobSweeper,
    private readonly log: Logger,
    private readonly onRun?: (report: GcReport) => void,
  ) {}

  /** One collection; a call while one runs shares it. */
  run(options: GcOptions): Promise<GcReport> {
    this.running ??= this.collect(options).finally(() => { this.running = undefined; });
    return this.running;
  }

  private async collect(options: GcOptions): Promise<GcReport> {
    const started = Date.now();
    const cutoff = started - options.graceMs;
    const report: GcReport = { manifests: [], blobs: 0, bytesFreed: 0, dryRun: options.dryRun, ms: 0 };
    await this.metadata.flushAccessTimes();
    if (options.deleteUntagged) {
      for (const repo of (await this.metadata.localRepositoryNames()) as RepoName[]) {
        const reached = await this.reachable(repo);
        for (const m of await this.metadata.repositoryManifests(repo)) {
          if (reached.has(m.digest)) continue;
          if (((await this.metadata.blobRecord(m.digest))?.lastAccess ?? 0) > cutoff) continue;
          if (options.dryRun || (await this.removeUntagged(repo, m.digest as Digest, cutoff))) report.manifests.push({ repo, digest: m.digest });
        }
      }
    }
    const tried = new Set<string>();
    for (;;) {
      const batch = (await this.metadata.unreferencedBlobs(cutoff, BATCH + tried.size)).filter((b) => !tried.has(b.digest));
      if (batch.length === 0) break;
      for (const b of batch) {
        tried.add(b.digest);
        const freed = await this.sweeper.remove(b.digest as Digest, { notAfter: cutoff, onlyCached: false, dryRun: options.dryRun });
        if (freed > 0) {
          report.blobs++;
          report.bytesFreed += freed;
        }
      }
    }
    report.ms = Date.now() - started;
    this.log.info({ manifests: report.manifests.length, blobs: report.blobs, bytesFreed: report.bytesFreed, dryRun: options.dryRun, ms: report.ms },
      options.dryRun ? 'garbage collection (dry run)' : 'garbage collection');
    if (!options.dryRun) this.onRun?.(report);
    return report;
  }

  /** Manifests of repo a tag reaches: tagged ones, their children, referrers of anything reached. */
  private async reachable(repo: RepoName): Promise<Set<string>> {
    const reached = new Set<string>();
    const queue = (await this.metadata.tagsOf(repo)).map((t) => t.digest);
    while (queue.length > 0) {
      const d = queue.pop()!;
      if (reached.has(d)) continue;
      reached.add(d);
      for (const r of await this.metadata.manifestRefs(d)) if (r.kind === 'manifest') queue.push(r.digest);
      queue.push(...(await this.metadata.referrerDigests(repo, d)));
    }
    return reached;
  }

  /** Removes the revision link, then looks again: tagged or used meanwhile -> put back. */
  private async removeUntagged(repo: RepoName, digest: Digest, cutoff: number): Promise<boolean> {
    const bytes = await this.registry.blobs.getContent(digest);
    const mediaType = await this.metadata.manifestType(digest);
    await this.registry.manifests.removeRevision(repo, digest);
    await this.metadata.flushAccessTimes();
    const used = ((await this.metadata.blobRecord(digest))?.lastAccess ?? 0) > cutoff || (await this.reachable(repo)).has(digest);
    if (!used) return true;
    if (bytes && (await readLink(this.registry.storage, revisionLinkPath(repo, digest))) !== digest) {
      await this.registry.manifests.put(repo, { kind: 'digest', digest }, bytes, mediaType, { verifyReferences: false, origin: 'local' });
    }
    this.log.info({ repo, digest }, 'garbage collection: manifest used meanwhile, kept');
    return false;
  }
}
