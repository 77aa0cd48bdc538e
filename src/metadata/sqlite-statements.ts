/** Every statement of the SQLite adapter, prepared once (sqlite.ts reads, sqlite-writer.ts writes). */
import type Database from 'better-sqlite3';
import type { ManifestRef, ReferrerRow, TagCacheRow, TagRow, UploadRow, UsageRow } from './port.js';

export function sqliteStatements(db: Database.Database) {
  return {
    getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    addMeta: db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)'),
    addRepo: db.prepare('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)'),
    catalog: db.prepare<[string, number], { name: string }>('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?'),
    hasRepo: db.prepare<[string], number>('SELECT 1 FROM repositories WHERE name = ?').pluck(),
    setTag: db.prepare('INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at'),
    deleteTag: db.prepare('DELETE FROM tags WHERE repo = ? AND tag = ?'),
    deleteTagsOf: db.prepare<[string, string], TagRow>('DELETE FROM tags WHERE repo = ? AND digest = ? RETURNING tag, digest'),
    listTags: db.prepare<[string, string, number], { tag: string }>('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?'),
    tagsOf: db.prepare<[string], TagRow>('SELECT tag, digest FROM tags WHERE repo = ?'),
    setType: db.prepare('INSERT INTO manifest_types (digest, media_type) VALUES (?, ?) ON CONFLICT(digest) DO UPDATE SET media_type = excluded.media_type'),
    getType: db.prepare<[string], { media_type: string }>('SELECT media_type FROM manifest_types WHERE digest = ?'),
    addReferrer: db.prepare('INSERT OR REPLACE INTO referrers (repo, subject, digest, media_type, artifact_type, size, annotations) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    deleteReferrer: db.prepare('DELETE FROM referrers WHERE repo = ? AND digest = ?'),
    listReferrers: db.prepare<[string, string], ReferrerRow>('SELECT digest, media_type, artifact_type, size, annotations FROM referrers WHERE repo = ? AND subject = ? ORDER BY digest'),
    referrersOf: db.prepare<[string, string], { digest: string }>('SELECT digest FROM referrers WHERE repo = ? AND subject = ?'),
    putBlob: db.prepare(`INSERT INTO blobs (digest, size, origin, upstream, last_access) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(digest) DO UPDATE SET last_access = excluded.last_access,
        origin = CASE WHEN excluded.origin = 'local' THEN 'local' ELSE blobs.origin END,
        upstream = CASE WHEN excluded.origin = 'local' THEN NULL ELSE blobs.upstream END`),
    expiredCached: db.prepare<[string, number], { digest: string }>("SELECT digest FROM blobs WHERE origin = 'cached' AND upstream = ? AND last_access < ?"),
    deleteBlob: db.prepare('DELETE FROM blobs WHERE digest = ?'),
    touchBlob: db.prepare('UPDATE blobs SET last_access = ? WHERE digest = ? AND last_access < ?'),
    blobAccess: db.prepare<[string], { size: number; origin: string; upstream: string | null; last_access: number }>('SELECT size, origin, upstream, last_access FROM blobs WHERE digest = ?'),
    usage: db.prepare<[], UsageRow>('SELECT origin, upstream, COUNT(*) AS blobs, COALESCE(SUM(size), 0) AS bytes FROM blobs GROUP BY origin, upstream ORDER BY origin, upstream'),
    cachedBytes: db.prepare<[], number>("SELECT COALESCE(SUM(size), 0) FROM blobs WHERE origin = 'cached'").pluck(),
    accessedManifests: db.prepare<[number], { digest: string }>('SELECT b.digest FROM blobs b JOIN manifest_types m ON m.digest = b.digest WHERE b.last_access >= ?'),
    addUpload: db.prepare('INSERT OR IGNORE INTO uploads (uuid, repo, started_at) VALUES (?, ?, ?)'),
    deleteUpload: db.prepare('DELETE FROM uploads WHERE uuid = ?'),
    uploadsBefore: db.prepare<[number], UploadRow>('SELECT uuid, repo, started_at FROM uploads WHERE started_at < ?'),
    getTagCache: db.prepare<[string, string, string], TagCacheRow>('SELECT digest, media_type, checked_at FROM tag_cache WHERE upstream = ? AND repo = ? AND tag = ?'),
    setTagCache: db.prepare('INSERT INTO tag_cache (upstream, repo, tag, digest, media_type, checked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(upstream, repo, tag) DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type, checked_at = excluded.checked_at'),
    seedTagCache: db.prepare('INSERT OR IGNORE INTO tag_cache (upstream, repo, tag, digest, media_type, checked_at) VALUES (?, ?, ?, ?, ?, 0)'),
    deleteTagCache: db.prepare('DELETE FROM tag_cache WHERE upstream = ? AND repo = ? AND tag = ?'),
    deleteTagCacheOf: db.prepare('DELETE FROM tag_cache WHERE upstream = ? AND repo = ? AND digest = ?'),
    getNegative: db.prepare<[string, string, string], { expires_at: number }>('SELECT expires_at FROM negative_cache WHERE upstream = ? AND repo = ? AND reference = ?'),
    setNegative: db.prepare('INSERT OR REPLACE INTO negative_cache (upstream, repo, reference, expires_at) VALUES (?, ?, ?, ?)'),
    deleteNegative: db.prepare('DELETE FROM negative_cache WHERE upstream = ? AND repo = ? AND reference = ?'),
    // lifecycle: garbage collection and the cache budget (see lifecycle/)
    unreferenced: db.prepare<[number, number], { digest: string; size: number; origin: string }>(`SELECT digest, size, origin FROM blobs b
      WHERE last_access < ? AND NOT EXISTS (SELECT 1 FROM repo_manifests m WHERE m.digest = b.digest)
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest WHERE r.ref = b.digest) LIMIT ?`),
    heldOrReferenced: db.prepare<[string, string], number>(`SELECT 1 FROM repo_manifests WHERE digest = ?
      UNION ALL SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest WHERE r.ref = ? LIMIT 1`).pluck(),
    deleteIdleBlob: db.prepare('DELETE FROM blobs WHERE digest = ? AND last_access <= ?'),
    repoManifests: db.prepare<[string], { digest: string; origin: string }>('SELECT digest, origin FROM repo_manifests WHERE repo = ?'),
    localRepos: db.prepare<[], { name: string }>('SELECT name FROM local_repositories ORDER BY name'),
    cachedTops: db.prepare<[], { repo: string; digest: string }>(`SELECT m.repo, m.digest FROM repo_manifests m WHERE m.origin = 'cached'
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests p ON p.digest = r.manifest AND p.repo = m.repo
        WHERE r.ref = m.digest AND r.kind = 'manifest')
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests s ON s.digest = r.ref AND s.repo = m.repo
        WHERE r.manifest = m.digest AND r.kind = 'subject')`),
    addRepoManifest: db.prepare('INSERT INTO repo_manifests (repo, digest, origin, added_at) VALUES (?, ?, ?, ?) ON CONFLICT(repo, digest) DO UPDATE SET origin = CASE WHEN excluded.origin = \'local\' THEN \'local\' ELSE repo_manifests.origin END'),
    removeRepoManifest: db.prepare('DELETE FROM repo_manifests WHERE repo = ? AND digest = ?'),
    addRef: db.prepare('INSERT OR IGNORE INTO manifest_refs (manifest, ref, kind) VALUES (?, ?, ?)'),
    refsOf: db.prepare<[string], ManifestRef>('SELECT ref AS digest, kind FROM manifest_refs WHERE manifest = ? ORDER BY ref'),
    forgetRefs: db.prepare('DELETE FROM manifest_refs WHERE manifest = ?'),
    referencedIn: db.prepare<[string, string], number>(`SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest
      WHERE r.ref = ? AND m.repo = ? LIMIT 1`).pluck(),
    markLocal: db.prepare('INSERT OR IGNORE INTO local_repositories (name, since) VALUES (?, ?)'),
    isLocal: db.prepare<[string], number>('SELECT 1 FROM local_repositories WHERE name = ?').pluck(),
    useRepo: db.prepare('INSERT INTO repo_use (repo, last_use) VALUES (?, ?) ON CONFLICT(repo) DO UPDATE SET last_use = MAX(last_use, excluded.last_use)'),
    repoUse: db.prepare<[string], number>('SELECT last_use FROM repo_use WHERE repo = ?').pluck(),
    outboxAdd: db.prepare('INSERT INTO notify_outbox (endpoint, created_at, event) VALUES (?, ?, ?)'),
    outboxPeek: db.prepare<[string, number], { id: number; event: string }>('SELECT id, event FROM notify_outbox WHERE endpoint = ? ORDER BY id LIMIT ?'),
    outboxRemove: db.prepare('DELETE FROM notify_outbox WHERE endpoint = ? AND id = ?'),
    outboxCount: db.prepare<[string], number>('SELECT count(*) FROM notify_outbox WHERE endpoint = ?').pluck(),
    outboxDropOldest: db.prepare('DELETE FROM notify_outbox WHERE id IN (SELECT id FROM notify_outbox WHERE endpoint = ? ORDER BY id LIMIT ?)'),
    outboxEndpoints: db.prepare<[], string>('SELECT DISTINCT endpoint FROM notify_outbox').pluck(),
    outboxClear: db.prepare('DELETE FROM notify_outbox WHERE endpoint = ?'),
  };
}

export type SqliteStatements = ReturnType<typeof sqliteStatements>;
