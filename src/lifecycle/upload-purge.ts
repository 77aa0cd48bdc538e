/**
 * registry:2's upload purging (storage.maintenance.uploadpurging: enabled, age, interval, dryrun):
 * upload sessions nobody has touched for `age` are removed with their bytes. Sessions are found
 * both in the index and in storage (sessions a registry:2 left in the data directory, or ones
 * whose index row a crash lost), so nothing abandoned stays forever. "Abandoned" counts from the
 * last byte written, not from the start: a slow upload that is still receiving bytes, a pull-through
 * fill or an import staging a big blob is never cut off.
 */
import type { Logger } from 'pino';
import type { UploadPurgingConfig } from '../config/schema.js';
import type { MetadataIndex } from '../metadata/port.js';
import type { RepoName } from '../oci/reference.js';
import { baseName, listOrEmpty } from '../registry/links.js';
import { walkRepositories } from '../registry/reindex.js';
import type { UploadStore } from '../registry/upload-store.js';
import { isPathNotFound, type StorageDriver } from '../storage/driver.js';
import { STAGING_REPO, uploadDataPath, uploadsDir, uploadStartedAtPath } from '../storage/layout.js';

export interface PurgeResult { purged: string[]; dryrun: boolean }

export interface UploadPurgeDeps {
  storage: StorageDriver;
  metadata: MetadataIndex;
  uploads: UploadStore;
  log: Logger;
  onPurged?: (count: number) => void;
}

/** The first run comes this long after start-up at most (registry:2 waits up to an hour). */
const FIRST_RUN_MAX_MS = 60_000;

export class UploadPurger {
  private timers: NodeJS.Timeout[] = [];
  private running: Promise<PurgeResult> | undefined;

  constructor(private readonly deps: UploadPurgeDeps, private readonly cfg: UploadPurgingConfig) {}

  start(gate: () => boolean = () => true): void {
    if (!this.cfg.enabled || this.cfg.intervalMs <= 0) return;
    const tick = () => gate() && void this.run().catch((err: unknown) => this.deps.log.error({ err }, 'upload purge failed'));
    this.timers.push(setTimeout(tick, Math.min(FIRST_RUN_MAX_MS, this.cfg.intervalMs)).unref());
    this.timers.push(setInterval(tick, this.cfg.intervalMs).unref());
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** One pass; overlapping calls share it. */
  run(now = Date.now()): Promise<PurgeResult> {
    this.running ??= this.pass(now).finally(() => { this.running = undefined; });
    return this.running;
  }

  private async pass(now: number): Promise<PurgeResult> {
    const { storage, metadata, uploads, log } = this.deps;
    const cutoff = now - this.cfg.ageMs;
    const candidates = new Map<string, { repo: RepoName; uuid: string }>();
    for (const u of await metadata.uploadsStartedBefore(cutoff)) candidates.set(u.uuid, { repo: u.repo as RepoName, uuid: u.uuid });
    const repos: RepoName[] = [STAGING_REPO];
    for await (const repo of walkRepositories(storage)) repos.push(repo);
    for (const repo of repos) {
      for (const dir of await listOrEmpty(storage, uploadsDir(repo))) {
        const uuid = baseName(dir);
        if (!candidates.has(uuid)) candidates.set(uuid, { repo, uuid });
      }
    }
    const purged: string[] = [];
    for (const { repo, uuid } of candidates.values()) {
      const last = await this.lastActivity(repo, uuid);
      if (last !== undefined && last >= cutoff) continue;
      purged.push(`${repo}/${uuid}`);
      if (!this.cfg.dryrun) await uploads.discard(repo, uuid);
    }
    if (purged.length > 0) {
      log.info({ purged: purged.length, sessions: purged.slice(0, 20), dryrun: this.cfg.dryrun }, this.cfg.dryrun ? 'upload purge (dry run): would remove' : 'purged abandoned upload sessions');
      if (!this.cfg.dryrun) this.deps.onPurged?.(purged.length);
    }
    return { purged, dryrun: this.cfg.dryrun };
  }

  /** The later of the session's start and its last write; undefined when neither exists. */
  private async lastActivity(repo: RepoName, uuid: string): Promise<number | undefined> {
    const { storage } = this.deps;
    let last: number | undefined;
    try {
      last = (await storage.stat(uploadDataPath(repo, uuid))).modTime.getTime();
    } catch (e) {
      if (!isPathNotFound(e)) throw e;
    }
    try {
      const started = Date.parse((await storage.getContent(uploadStartedAtPath(repo, uuid))).toString('utf8'));
      if (!Number.isNaN(started)) last = Math.max(last ?? 0, started);
    } catch (e) {
      if (!isPathNotFound(e)) throw e;
    }
    return last;
  }
}
