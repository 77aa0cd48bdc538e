/**
 * The SQLite adapter of the metadata port (better-sqlite3, WAL): the embedded default for one
 * process (the CLI tools may open the same file beside the server). Statements are synchronous,
 * a few microseconds on a local file, prepared once; the port's promises are already settled.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { LocalChangeFeed } from './changes.js';
import type {
  BlobRecord, LeaseStore, ManifestRef, MetadataIndex, MetadataWriter, OutboxRow, OutboxStore, ReferrerRow, TagCacheRow,
  TagRow, UploadRow, UsageRow,
} from './port.js';
import { PendingUse } from './pending-use.js';
import { MIGRATIONS } from './sqlite-schema.js';
import { MemoryLeases } from './memory-leases.js';
import type { BrowseIndex } from './browse.js';
import { SqliteBrowseIndex } from './browse-sqlite.js';
import { sqliteStatements, type SqliteStatements } from './sqlite-statements.js';
import { SQLITE_OPS } from './sqlite-writer.js';
import { BatchRecorder, type OpTable } from './batch.js';
import { TagCacheMemo } from './tag-cache-memo.js';

/** How soon a commit by another process (a command beside the server) reaches this one's caches. */
const OTHER_WRITERS_POLL_MS = 1_000;

export class SqliteIndex implements MetadataIndex {
  readonly kind = 'sqlite' as const;
  readonly db: Database.Database;
  readonly changes = new LocalChangeFeed();
  readonly outbox: OutboxStore;
  readonly leases: LeaseStore;
  readonly browse: BrowseIndex;
  private readonly pending = new PendingUse();
  private readonly stmts: SqliteStatements;
  private readonly tagCacheRows: TagCacheMemo;
  private readonly otherWriters: NodeJS.Timeout;

  constructor(readonly location: string) {
    if (location !== ':memory:') mkdirSync(dirname(location), { recursive: true });
    this.db = new Database(location);
    // PRAGMAs through exec and one kept statement: db.pragma() prepares a throwaway Statement per
    // call, and on Node 24 a better-sqlite3 Statement finalized by an unlucky GC can abort the
    // process (Statement::~Statement -> RemoveEnvironmentCleanupHook with no environment).
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
    const userVersion = this.db.prepare<[], number>('PRAGMA user_version').pluck();
    const version = userVersion.get() ?? 0;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.exec(`PRAGMA user_version = ${v + 1}`);
      })();
    }
    const s = this.stmts = sqliteStatements(this.db);
    this.outbox = {
      peek: async (endpoint, limit) => s.outboxPeek.all(endpoint, limit) as OutboxRow[],
      remove: async (endpoint, ids) => this.db.transaction(() => ids.reduce((n, id) => n + s.outboxRemove.run(endpoint, id).changes, 0))(),
      count: async (endpoint) => s.outboxCount.get(endpoint) ?? 0,
      dropOldest: async (endpoint, n) => s.outboxDropOldest.run(endpoint, n).changes,
      endpoints: async () => s.outboxEndpoints.all(),
      clear: async (endpoint) => s.outboxClear.run(endpoint).changes,
    };
    this.leases = new MemoryLeases();
    this.browse = new SqliteBrowseIndex(this.db);
    this.tagCacheRows = new TagCacheMemo(this.changes);
    this.otherWriters = this.watchOtherWriters();
  }

  /**
   * Commands beside a running server (`stowage import`, `prefetch`, `gc`, `reindex`) write the same
   * file from another process, which this process's change feed never hears. SQLite counts commits
   * by other connections (PRAGMA data_version, a read of a shared-memory counter): when it moved,
   * every cache above the index starts over, within a second of the other process's commit.
   */
  private watchOtherWriters(): NodeJS.Timeout {
    const dataVersion = this.db.prepare<[], number>('PRAGMA data_version').pluck();
    let seen = dataVersion.get();
    const timer = setInterval(() => {
      if (!this.db.open) return;
      const now = dataVersion.get();
      if (now !== seen) {
        seen = now;
        this.changes.publish({ kind: 'all' });
      }
    }, OTHER_WRITERS_POLL_MS);
    timer.unref();
    return timer;
  }

  async write(record: (w: MetadataWriter) => void): Promise<void> {
    const batch = new BatchRecorder();
    record(batch);
    const table = SQLITE_OPS as OpTable<SqliteStatements> as Record<string, (s: SqliteStatements, ...a: unknown[]) => void>;
    this.db.transaction(() => { for (const { op, args } of batch.ops) table[op]!(this.stmts, ...args); })();
    for (const c of batch.changeList()) this.changes.publish(c);
  }

  async getMeta(key: string): Promise<string | undefined> { return this.stmts.getMeta.get(key)?.value; }

  async sharedSecret(name: string): Promise<Buffer> {
    const key = `secret:${name}`;
    this.stmts.addMeta.run(key, randomBytes(32).toString('hex'));
    return Buffer.from(this.stmts.getMeta.get(key)!.value, 'hex');
  }

  async catalog(last: string, limit: number): Promise<string[]> { return this.stmts.catalog.all(last, limit).map((r) => r.name); }
  async hasRepository(repo: string): Promise<boolean> { return this.stmts.hasRepo.get(repo) !== undefined; }
  async listTags(repo: string, last: string, limit: number): Promise<string[]> { return this.stmts.listTags.all(repo, last, limit).map((r) => r.tag); }
  async tagsOf(repo: string): Promise<TagRow[]> { return this.stmts.tagsOf.all(repo); }
  async deleteTagsOf(repo: string, digest: string): Promise<string[]> {
    const tags = this.stmts.deleteTagsOf.all(repo, digest).map((r) => r.tag);
    for (const tag of tags) this.changes.publish({ kind: 'tag', repo, tag });
    return tags;
  }
  async manifestType(digest: string): Promise<string | undefined> { return this.stmts.getType.get(digest)?.media_type; }
  async listReferrers(repo: string, subject: string): Promise<ReferrerRow[]> { return this.stmts.listReferrers.all(repo, subject); }
  async referrerDigests(repo: string, subject: string): Promise<string[]> { return this.stmts.referrersOf.all(repo, subject).map((r) => r.digest); }

  async blobRecord(digest: string): Promise<BlobRecord | undefined> {
    const r = this.stmts.blobAccess.get(digest);
    return r ? { size: r.size, origin: r.origin, upstream: r.upstream, lastAccess: r.last_access } : undefined;
  }
  async expiredCachedBlobs(upstream: string, before: number): Promise<string[]> { return this.stmts.expiredCached.all(upstream, before).map((r) => r.digest); }
  async usage(): Promise<UsageRow[]> { return this.stmts.usage.all(); }
  async cachedBytes(): Promise<number> { return this.stmts.cachedBytes.get() ?? 0; }

  touchBlob(digest: string): void { this.pending.touch(digest); }
  async markUsed(digests: readonly string[]): Promise<void> {
    const now = Date.now();
    this.db.transaction(() => { for (const d of digests) this.stmts.touchBlob.run(now, d, now); })();
  }
  async flushAccessTimes(): Promise<number> {
    const entries = this.pending.takeAccess();
    if (entries.length > 0) this.db.transaction(() => { for (const [d, t] of entries) this.stmts.touchBlob.run(t, d, t); })();
    return entries.length;
  }
  async manifestsAccessedSince(since: number): Promise<string[]> { return this.stmts.accessedManifests.all(since).map((r) => r.digest); }

  async uploadsStartedBefore(time: number): Promise<UploadRow[]> { return this.stmts.uploadsBefore.all(time); }

  async tagCache(upstream: string, repo: string, tag: string): Promise<TagCacheRow | undefined> {
    return this.tagCacheRows.read(upstream, repo, tag, async () => this.stmts.getTagCache.get(upstream, repo, tag));
  }
  async isNegative(upstream: string, repo: string, reference: string, now: number): Promise<boolean> {
    const row = this.stmts.getNegative.get(upstream, repo, reference);
    if (!row) return false;
    if (row.expires_at > now) return true;
    this.stmts.deleteNegative.run(upstream, repo, reference);
    return false;
  }

  async manifestRefs(manifest: string): Promise<ManifestRef[]> { return this.stmts.refsOf.all(manifest); }
  async isReferencedIn(repo: string, digest: string): Promise<boolean> { return this.stmts.referencedIn.get(digest, repo) !== undefined; }
  async markLocal(repo: string): Promise<boolean> {
    const isNew = this.stmts.markLocal.run(repo, Date.now()).changes > 0;
    if (isNew) this.changes.publish({ kind: 'local', repo });
    return isNew;
  }
  async isLocal(repo: string): Promise<boolean> { return this.stmts.isLocal.get(repo) !== undefined; }
  async localRepositoryNames(): Promise<string[]> { return this.stmts.localRepos.all().map((r) => r.name); }
  async repositoryManifests(repo: string): Promise<Array<{ digest: string; origin: string }>> { return this.stmts.repoManifests.all(repo); }

  async unreferencedBlobs(before: number, limit: number): Promise<Array<{ digest: string; size: number; origin: string }>> {
    return this.stmts.unreferenced.all(before, limit);
  }
  async isHeldOrReferenced(digest: string): Promise<boolean> { return this.stmts.heldOrReferenced.get(digest, digest) !== undefined; }
  async deleteBlobIfIdle(digest: string, notAfter: number): Promise<boolean> {
    const deleted = this.stmts.deleteIdleBlob.run(digest, notAfter).changes > 0;
    if (deleted) this.changes.publish({ kind: 'blob', digest });
    return deleted;
  }
  async cachedImages(): Promise<Array<{ repo: string; digest: string }>> { return this.stmts.cachedTops.all(); }

  noteRepositoryUse(repo: string, at: number): void { this.pending.useRepository(repo, at); }
  async flushRepositoryUse(): Promise<void> {
    const entries = this.pending.takeRepositoryUse();
    if (entries.length > 0) this.db.transaction(() => { for (const [r, t] of entries) this.stmts.useRepo.run(r, t); })();
  }
  async repositoryUsedSince(repo: string, since: number): Promise<boolean> {
    if (this.pending.repositoryUsedSince(repo, since)) return true;
    return (this.stmts.repoUse.get(repo) ?? 0) > since;
  }

  async clearContentIndex(): Promise<void> {
    this.db.exec(`DELETE FROM repositories; DELETE FROM tags; DELETE FROM referrers; DELETE FROM uploads;
      DELETE FROM repo_manifests; DELETE FROM manifest_refs; DELETE FROM local_repositories;`);
    this.changes.publish({ kind: 'all' });
  }

  async ping(): Promise<void> { /* a local file: nothing to reach */ }

  async close(): Promise<void> {
    clearInterval(this.otherWriters);
    if (!this.db.open) return;
    await this.flushAccessTimes();
    await this.flushRepositoryUse();
    this.db.close();
  }
}
