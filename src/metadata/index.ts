/**
 * The metadata index (better-sqlite3, WAL). Synchronous by design: every statement is a few
 * microseconds on a local file, cheaper than a promise hop. Prepared once, reused.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Outbox } from './outbox.js';
import { MIGRATIONS } from './schema.js';

export interface TagRow { tag: string; digest: string }
export interface ReferrerRow {
  digest: string; media_type: string; artifact_type: string | null; size: number; annotations: string | null;
}
export interface ReferrerRecord {
  repo: string; subject: string; digest: string; mediaType: string;
  artifactType?: string; size: number; annotations?: Record<string, string>;
}
export interface TagCacheRow { digest: string; media_type: string; checked_at: number }
export interface UsageRow { origin: string; upstream: string | null; blobs: number; bytes: number }
export interface UploadRow { uuid: string; repo: string; started_at: number }
/** What a manifest references (kind: config, layer, blob, subject or manifest, as oci/manifest.ts says). */
export interface ManifestRef { digest: string; kind: string }

export class MetadataIndex {
  readonly db: Database.Database;
  /** Undelivered notification events (notify/ delivers them). */
  readonly outbox: Outbox;
  private readonly pendingAccess = new Map<string, number>();
  private readonly stmts;
  private readonly userVersion: Database.Statement<[], number>;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    // PRAGMAs through exec and one kept statement: db.pragma() prepares a throwaway Statement per
    // call, and on Node 24 a better-sqlite3 Statement finalized by an unlucky GC can abort the
    // process (Statement::~Statement -> RemoveEnvironmentCleanupHook with no environment).
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
    this.userVersion = this.db.prepare<[], number>('PRAGMA user_version').pluck();
    const version = this.userVersion.get() ?? 0;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.exec(`PRAGMA user_version = ${v + 1}`);
      })();
    }
    const db = this.db;
    this.outbox = new Outbox(db);
    this.stmts = {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      addRepo: db.prepare('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)'),
      catalog: db.prepare<[string, number], { name: string }>('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?'),
      setTag: db.prepare('INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at'),
      deleteTag: db.prepare('DELETE FROM tags WHERE repo = ? AND tag = ?'),
      deleteTagsOf: db.prepare<[string, string], TagRow>('DELETE FROM tags WHERE repo = ? AND digest = ? RETURNING tag, digest'),
      listTags: db.prepare<[string, string, number], { tag: string }>('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?'),
      tagsOfDigest: db.prepare<[string, string], { tag: string }>('SELECT tag FROM tags WHERE repo = ? AND digest = ?'),
      setType: db.prepare('INSERT INTO manifest_types (digest, media_type) VALUES (?, ?) ON CONFLICT(digest) DO UPDATE SET media_type = excluded.media_type'),
      getType: db.prepare<[string], { media_type: string }>('SELECT media_type FROM manifest_types WHERE digest = ?'),
      addReferrer: db.prepare('INSERT OR REPLACE INTO referrers (repo, subject, digest, media_type, artifact_type, size, annotations) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      deleteReferrer: db.prepare('DELETE FROM referrers WHERE repo = ? AND digest = ?'),
      listReferrers: db.prepare<[string, string], ReferrerRow>('SELECT digest, media_type, artifact_type, size, annotations FROM referrers WHERE repo = ? AND subject = ? ORDER BY digest'),
      // A blob pushed here is local for good, even if an upstream's copy was cached first.
      putBlob: db.prepare(`INSERT INTO blobs (digest, size, origin, upstream, last_access) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT(digest) DO UPDATE SET last_access = excluded.last_access,
          origin = CASE WHEN excluded.origin = 'local' THEN 'local' ELSE blobs.origin END,
          upstream = CASE WHEN excluded.origin = 'local' THEN NULL ELSE blobs.upstream END`),
      expiredCached: db.prepare<[string, number], { digest: string }>("SELECT digest FROM blobs WHERE origin = 'cached' AND upstream = ? AND last_access < ?"),
      deleteBlob: db.prepare('DELETE FROM blobs WHERE digest = ?'),
      touchBlob: db.prepare('UPDATE blobs SET last_access = ? WHERE digest = ? AND last_access < ?'),
      addUpload: db.prepare('INSERT INTO uploads (uuid, repo, started_at) VALUES (?, ?, ?)'),
      deleteUpload: db.prepare('DELETE FROM uploads WHERE uuid = ?'),
      getTagCache: db.prepare<[string, string, string], TagCacheRow>('SELECT digest, media_type, checked_at FROM tag_cache WHERE upstream = ? AND repo = ? AND tag = ?'),
      setTagCache: db.prepare('INSERT INTO tag_cache (upstream, repo, tag, digest, media_type, checked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(upstream, repo, tag) DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type, checked_at = excluded.checked_at'),
      seedTagCache: db.prepare('INSERT OR IGNORE INTO tag_cache (upstream, repo, tag, digest, media_type, checked_at) VALUES (?, ?, ?, ?, ?, 0)'),
      deleteTagCache: db.prepare('DELETE FROM tag_cache WHERE upstream = ? AND repo = ? AND tag = ?'),
      getNegative: db.prepare<[string, string, string], { expires_at: number }>('SELECT expires_at FROM negative_cache WHERE upstream = ? AND repo = ? AND reference = ?'),
      setNegative: db.prepare('INSERT OR REPLACE INTO negative_cache (upstream, repo, reference, expires_at) VALUES (?, ?, ?, ?)'),
      deleteNegative: db.prepare('DELETE FROM negative_cache WHERE upstream = ? AND repo = ? AND reference = ?'),
      uploadsBefore: db.prepare<[number], UploadRow>('SELECT uuid, repo, started_at FROM uploads WHERE started_at < ?'),
      accessedManifests: db.prepare<[number], { digest: string }>('SELECT b.digest FROM blobs b JOIN manifest_types m ON m.digest = b.digest WHERE b.last_access >= ?'),
      blobAccess: db.prepare<[string], { size: number; origin: string; upstream: string | null; last_access: number }>('SELECT size, origin, upstream, last_access FROM blobs WHERE digest = ?'),
      // lifecycle: garbage collection and the cache budget (see lifecycle/)
      unreferenced: db.prepare<[number, number], { digest: string; size: number; origin: string }>(`SELECT digest, size, origin FROM blobs b
        WHERE last_access < ? AND NOT EXISTS (SELECT 1 FROM repo_manifests m WHERE m.digest = b.digest)
        AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest WHERE r.ref = b.digest) LIMIT ?`),
      heldOrReferenced: db.prepare<[string, string], number>(`SELECT 1 FROM repo_manifests WHERE digest = ?
        UNION ALL SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest WHERE r.ref = ? LIMIT 1`).pluck(),
      deleteIdleBlob: db.prepare('DELETE FROM blobs WHERE digest = ? AND last_access <= ?'),
      repoManifests: db.prepare<[string], { digest: string; origin: string }>('SELECT digest, origin FROM repo_manifests WHERE repo = ?'),
      localRepos: db.prepare<[], { name: string }>('SELECT name FROM local_repositories ORDER BY name'),
      tagsOf: db.prepare<[string], TagRow>('SELECT tag, digest FROM tags WHERE repo = ?'),
      cachedTops: db.prepare<[], { repo: string; digest: string }>(`SELECT m.repo, m.digest FROM repo_manifests m WHERE m.origin = 'cached'
        AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests p ON p.digest = r.manifest AND p.repo = m.repo
          WHERE r.ref = m.digest AND r.kind = 'manifest')
        AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests s ON s.digest = r.ref AND s.repo = m.repo
          WHERE r.manifest = m.digest AND r.kind = 'subject')`),
      cachedBytes: db.prepare<[], number>("SELECT COALESCE(SUM(size), 0) FROM blobs WHERE origin = 'cached'").pluck(),
      deleteTagCacheOf: db.prepare('DELETE FROM tag_cache WHERE upstream = ? AND repo = ? AND digest = ?'),
      referrersOf: db.prepare<[string, string], { digest: string }>('SELECT digest FROM referrers WHERE repo = ? AND subject = ?'),
      usage: db.prepare<[], UsageRow>('SELECT origin, upstream, COUNT(*) AS blobs, COALESCE(SUM(size), 0) AS bytes FROM blobs GROUP BY origin, upstream ORDER BY origin, upstream'),
      addRepoManifest: db.prepare('INSERT INTO repo_manifests (repo, digest, origin, added_at) VALUES (?, ?, ?, ?) ON CONFLICT(repo, digest) DO UPDATE SET origin = CASE WHEN excluded.origin = \'local\' THEN \'local\' ELSE repo_manifests.origin END'),
      removeRepoManifest: db.prepare('DELETE FROM repo_manifests WHERE repo = ? AND digest = ?'),
      addRef: db.prepare('INSERT OR IGNORE INTO manifest_refs (manifest, ref, kind) VALUES (?, ?, ?)'),
      refsOf: db.prepare<[string], ManifestRef>('SELECT ref AS digest, kind FROM manifest_refs WHERE manifest = ? ORDER BY ref'),
      hasRefs: db.prepare<[string], number>('SELECT 1 FROM manifest_refs WHERE manifest = ? LIMIT 1').pluck(),
      forgetRefs: db.prepare('DELETE FROM manifest_refs WHERE manifest = ?'),
      referencedIn: db.prepare<[string, string], number>(`SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest
        WHERE r.ref = ? AND m.repo = ? LIMIT 1`).pluck(),
      markLocal: db.prepare('INSERT OR IGNORE INTO local_repositories (name, since) VALUES (?, ?)'),
      isLocal: db.prepare<[string], number>('SELECT 1 FROM local_repositories WHERE name = ?').pluck(),
      hasRepo: db.prepare<[string], number>('SELECT 1 FROM repositories WHERE name = ?').pluck(),
    };
  }

  getMeta(key: string): string | undefined { return this.stmts.getMeta.get(key)?.value; }
  setMeta(key: string, value: string): void { this.stmts.setMeta.run(key, value); }

  addRepository(name: string): void { this.stmts.addRepo.run(name, Date.now()); }
  catalog(last: string, limit: number): string[] {
    return this.stmts.catalog.all(last, limit).map((r) => r.name);
  }

  setTag(repo: string, tag: string, digest: string): void { this.stmts.setTag.run(repo, tag, digest, Date.now()); }
  deleteTag(repo: string, tag: string): void { this.stmts.deleteTag.run(repo, tag); }
  /** Removes every tag of repo pointing at digest; returns the removed tag names. */
  deleteTagsOf(repo: string, digest: string): string[] { return this.stmts.deleteTagsOf.all(repo, digest).map((r) => r.tag); }
  listTags(repo: string, last: string, limit: number): string[] {
    return this.stmts.listTags.all(repo, last, limit).map((r) => r.tag);
  }

  setManifestType(digest: string, mediaType: string): void { this.stmts.setType.run(digest, mediaType); }
  manifestType(digest: string): string | undefined { return this.stmts.getType.get(digest)?.media_type; }

  addReferrer(r: ReferrerRecord): void {
    this.stmts.addReferrer.run(r.repo, r.subject, r.digest, r.mediaType, r.artifactType ?? null, r.size,
      r.annotations ? JSON.stringify(r.annotations) : null);
  }
  deleteReferrer(repo: string, digest: string): void { this.stmts.deleteReferrer.run(repo, digest); }
  listReferrers(repo: string, subject: string): ReferrerRow[] { return this.stmts.listReferrers.all(repo, subject); }

  recordBlob(digest: string, size: number, origin: 'local' | 'cached', upstream?: string): void {
    this.stmts.putBlob.run(digest, size, origin, upstream ?? null, Date.now());
  }
  /** Cached (never pushed) blobs of an upstream not read since `before`. */
  expiredCachedBlobs(upstream: string, before: number): string[] {
    return this.stmts.expiredCached.all(upstream, before).map((r) => r.digest);
  }
  deleteBlob(digest: string): void { this.stmts.deleteBlob.run(digest); }

  /** Access times are batched: remembered here and written by flushAccessTimes(). */
  touchBlob(digest: string): void { this.pendingAccess.set(digest, Date.now()); }
  /**
   * Records use now, synchronously (not batched): what a manifest push does for everything it
   * references before checking it is there, so a concurrent sweep sees the use (lifecycle/sweep.ts).
   */
  markUsed(digests: readonly string[]): void {
    const now = Date.now();
    this.db.transaction(() => { for (const d of digests) this.stmts.touchBlob.run(now, d, now); })();
  }

  flushAccessTimes(): number {
    if (this.pendingAccess.size === 0) return 0;
    const entries = [...this.pendingAccess];
    this.pendingAccess.clear();
    this.db.transaction(() => { for (const [d, t] of entries) this.stmts.touchBlob.run(t, d, t); })();
    return entries.length;
  }

  addUpload(uuid: string, repo: string, startedAt: number): void { this.stmts.addUpload.run(uuid, repo, startedAt); }
  deleteUpload(uuid: string): void { this.stmts.deleteUpload.run(uuid); }
  uploadsStartedBefore(time: number): UploadRow[] { return this.stmts.uploadsBefore.all(time); }

  /** The upstream tag cache: what upstream U said tag T of repo R was, and when that was checked. */
  tagCache(upstream: string, repo: string, tag: string): TagCacheRow | undefined {
    return this.stmts.getTagCache.get(upstream, repo, tag);
  }
  setTagCache(upstream: string, repo: string, tag: string, digest: string, mediaType: string, checkedAt: number): void {
    this.stmts.setTagCache.run(upstream, repo, tag, digest, mediaType, checkedAt);
  }
  /** Records a cached tag found in storage, as never checked (the next request revalidates it). */
  seedTagCache(upstream: string, repo: string, tag: string, digest: string, mediaType: string): void {
    this.stmts.seedTagCache.run(upstream, repo, tag, digest, mediaType);
  }
  deleteTagCache(upstream: string, repo: string, tag: string): void { this.stmts.deleteTagCache.run(upstream, repo, tag); }

  /** Negative cache: an upstream 404 for a reference, remembered until expiresAt. */
  isNegative(upstream: string, repo: string, reference: string, now: number): boolean {
    const row = this.stmts.getNegative.get(upstream, repo, reference);
    if (!row) return false;
    if (row.expires_at > now) return true;
    this.stmts.deleteNegative.run(upstream, repo, reference);
    return false;
  }
  setNegative(upstream: string, repo: string, reference: string, expiresAt: number): void {
    this.stmts.setNegative.run(upstream, repo, reference, expiresAt);
  }
  clearNegative(upstream: string, repo: string, reference: string): void { this.stmts.deleteNegative.run(upstream, repo, reference); }

  /** Manifests (by digest) read or stored since `since` (access times as last flushed). */
  manifestsAccessedSince(since: number): string[] {
    return this.stmts.accessedManifests.all(since).map((r) => r.digest);
  }
  blobRecord(digest: string): { size: number; origin: string; upstream: string | null; lastAccess: number } | undefined {
    const r = this.stmts.blobAccess.get(digest);
    return r ? { size: r.size, origin: r.origin, upstream: r.upstream, lastAccess: r.last_access } : undefined;
  }
  /** Blob count and bytes by origin (local, cached) and upstream. */
  usage(): UsageRow[] { return this.stmts.usage.all(); }
  /**
   * The reference index: `manifest` (stored bytes, global) references `refs`, and repo holds
   * manifest (a revision link) as pushed ('local') or cached content. Idempotent.
   */
  recordManifest(repo: string, manifest: string, origin: 'local' | 'cached', refs: readonly ManifestRef[]): void {
    this.stmts.addRepoManifest.run(repo, manifest, origin, Date.now());
    if (refs.length > 0 && this.stmts.hasRefs.get(manifest) === undefined) {
      for (const r of refs) this.stmts.addRef.run(manifest, r.digest, r.kind);
    }
  }
  /** repo no longer holds manifest (its revision link was deleted). */
  removeManifestFrom(repo: string, manifest: string): void { this.stmts.removeRepoManifest.run(repo, manifest); }
  /** The manifest's bytes are gone: forget what it referenced. */
  forgetManifestRefs(manifest: string): void { this.stmts.forgetRefs.run(manifest); }
  manifestRefs(manifest: string): ManifestRef[] { return this.stmts.refsOf.all(manifest); }
  /** True when a manifest held by repo references digest (as config, layer, blob, subject or child). */
  isReferencedIn(repo: string, digest: string): boolean { return this.stmts.referencedIn.get(digest, repo) !== undefined; }

  /** Marks repo as holding pushed content; true if it was not marked before. */
  markLocal(repo: string): boolean { return this.stmts.markLocal.run(repo, Date.now()).changes > 0; }
  /** True once anything was pushed to repo (an upload started, a mount, a manifest). */
  isLocal(repo: string): boolean { return this.stmts.isLocal.get(repo) !== undefined; }
  /** True when repo has manifests in the index (pushed or cached). */
  hasRepository(repo: string): boolean { return this.stmts.hasRepo.get(repo) !== undefined; }

  // ------------------------------------------------------------ lifecycle (GC, cache budget)

  /** Blobs no manifest held by any repository references (nor is one), last used before `before`. */
  unreferencedBlobs(before: number, limit: number): Array<{ digest: string; size: number; origin: string }> {
    return this.stmts.unreferenced.all(before, limit);
  }
  /** True when a repository holds digest as a manifest, or a manifest it holds references digest. */
  isHeldOrReferenced(digest: string): boolean { return this.stmts.heldOrReferenced.get(digest, digest) !== undefined; }
  /** Deletes the blob's row unless it was recorded or used after `notAfter`; true if deleted. */
  deleteBlobIfIdle(digest: string, notAfter: number): boolean { return this.stmts.deleteIdleBlob.run(digest, notAfter).changes > 0; }
  repositoryManifests(repo: string): Array<{ digest: string; origin: string }> { return this.stmts.repoManifests.all(repo); }
  localRepositoryNames(): string[] { return this.stmts.localRepos.all().map((r) => r.name); }
  tagsOf(repo: string): TagRow[] { return this.stmts.tagsOf.all(repo); }
  /** Cached manifests that are not a child (or a referrer) of another manifest of their repository: images. */
  cachedImages(): Array<{ repo: string; digest: string }> { return this.stmts.cachedTops.all(); }
  /** Bytes of cached (never pushed) content. */
  cachedBytes(): number { return this.stmts.cachedBytes.get() ?? 0; }
  deleteTagCacheOf(upstream: string, repo: string, digest: string): void { this.stmts.deleteTagCacheOf.run(upstream, repo, digest); }
  referrerDigests(repo: string, subject: string): string[] { return this.stmts.referrersOf.all(repo, subject).map((r) => r.digest); }

  /** Drops everything that reindex rebuilds from storage (not operational state). */
  clearContentIndex(): void {
    this.db.exec(`DELETE FROM repositories; DELETE FROM tags; DELETE FROM referrers; DELETE FROM uploads;
      DELETE FROM repo_manifests; DELETE FROM manifest_refs; DELETE FROM local_repositories;`);
  }

  transaction<T>(fn: () => T): T { return this.db.transaction(fn)(); }

  close(): void {
    this.flushAccessTimes();
    this.db.close();
  }
}
