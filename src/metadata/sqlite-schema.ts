/**
 * SQLite schema migrations, applied in order by PRAGMA user_version. The index only ever holds
 * what can be rebuilt from storage (`stowage reindex`) plus operational state (upload sessions,
 * access times, the upstream tag cache, undelivered notifications): deleting the file loses no
 * content (only notifications not yet delivered).
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE repositories (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE tags (
    repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (repo, tag)) WITHOUT ROWID;
  CREATE TABLE manifest_types (digest TEXT PRIMARY KEY, media_type TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE referrers (
    repo TEXT NOT NULL, subject TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL,
    artifact_type TEXT, size INTEGER NOT NULL, annotations TEXT,
    PRIMARY KEY (repo, subject, digest)) WITHOUT ROWID;
  CREATE TABLE blobs (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, origin TEXT NOT NULL, upstream TEXT,
    last_access INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE uploads (uuid TEXT PRIMARY KEY, repo TEXT NOT NULL, started_at INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE tag_cache (
    upstream TEXT NOT NULL, repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
    media_type TEXT NOT NULL, checked_at INTEGER NOT NULL,
    PRIMARY KEY (upstream, repo, tag)) WITHOUT ROWID;
  CREATE TABLE negative_cache (
    upstream TEXT NOT NULL, repo TEXT NOT NULL, reference TEXT NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (upstream, repo, reference)) WITHOUT ROWID;
  `,
  // 2: the reference index (which digests each manifest references, which manifests each
  // repository holds) and the repositories that hold pushed content. Storage already has what
  // these need, so an index written before them is rebuilt: dropping indexed_at makes the next
  // start (or `stowage reindex`) fill them.
  `
  CREATE TABLE manifest_refs (
    manifest TEXT NOT NULL, ref TEXT NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (manifest, ref)) WITHOUT ROWID;
  CREATE INDEX manifest_refs_by_ref ON manifest_refs (ref);
  CREATE TABLE repo_manifests (
    repo TEXT NOT NULL, digest TEXT NOT NULL, origin TEXT NOT NULL, added_at INTEGER NOT NULL,
    PRIMARY KEY (repo, digest)) WITHOUT ROWID;
  CREATE INDEX repo_manifests_by_digest ON repo_manifests (digest);
  CREATE TABLE local_repositories (name TEXT PRIMARY KEY, since INTEGER NOT NULL) WITHOUT ROWID;
  DELETE FROM meta WHERE key = 'indexed_at';
  `,
  // 3: the notification outbox (operational state, not rebuilt by reindex): one row per event and
  // endpoint, delivered in id order (a new rowid is always above every row still there, so
  // AUTOINCREMENT's extra write per insert is not needed). Written in the transaction that
  // records the content.
  `
  CREATE TABLE IF NOT EXISTS notify_outbox (
    id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL, created_at INTEGER NOT NULL, event TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS notify_outbox_by_endpoint ON notify_outbox (endpoint, id);
  `,
  // 4: the last read of each repository, which eviction consults (flushed often, not per read).
  `
  CREATE TABLE repo_use (repo TEXT PRIMARY KEY, last_use INTEGER NOT NULL) WITHOUT ROWID;
  `,
  // 5: what the web page shows beside the content (metadata/browse.ts): pull counts per stored
  // repository and manifest, and request figures per minute (kept 8 days), both added to by every
  // replica from its in-memory batch; and the platforms of each manifest, read once from its bytes (a manifest never changes) so listings
  // need not open storage.
  // Plain SQL PostgreSQL also takes, but for WITHOUT ROWID (drop it there) and INTEGER (BIGINT
  // there: times in ms and byte counts pass 2^31).
  `
  CREATE TABLE pull_counts (
    repo TEXT NOT NULL, digest TEXT NOT NULL, pulls INTEGER NOT NULL, last_pulled INTEGER NOT NULL,
    PRIMARY KEY (repo, digest)) WITHOUT ROWID;
  CREATE INDEX pull_counts_by_pulls ON pull_counts (pulls);
  CREATE TABLE traffic (
    minute INTEGER PRIMARY KEY, requests INTEGER NOT NULL, hits INTEGER NOT NULL, misses INTEGER NOT NULL,
    local_bytes INTEGER NOT NULL, cache_bytes INTEGER NOT NULL, fetched_bytes INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE manifest_platforms (digest TEXT PRIMARY KEY, platforms TEXT NOT NULL) WITHOUT ROWID;
  `,
];
