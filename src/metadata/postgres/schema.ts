/**
 * PostgreSQL schema migrations, in order; version N is MIGRATIONS[N - 1]. The tables are the
 * SQLite adapter's (sqlite-schema.ts), with PostgreSQL types: times are milliseconds since the
 * epoch in bigint columns (written by the replicas' clocks, as SQLite's are), except lease expiry,
 * which the database's own clock decides (replicas' clocks need not agree). Names and tags sort
 * in byte order (COLLATE "C"), as SQLite's do and as _catalog and tags/list page through them.
 */
export interface Migration { description: string; sql: string }

export const MIGRATIONS: readonly Migration[] = [
  {
    description: 'content index, caches, outbox, leases',
    sql: `
    CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE repositories (name text COLLATE "C" PRIMARY KEY, created_at bigint NOT NULL);
    CREATE TABLE tags (repo text COLLATE "C" NOT NULL, tag text COLLATE "C" NOT NULL, digest text NOT NULL, updated_at bigint NOT NULL, PRIMARY KEY (repo, tag));
    CREATE INDEX tags_by_digest ON tags (repo, digest);
    CREATE TABLE manifest_types (digest text PRIMARY KEY, media_type text NOT NULL);
    CREATE TABLE referrers (
      repo text NOT NULL, subject text NOT NULL, digest text NOT NULL, media_type text NOT NULL,
      artifact_type text, size bigint NOT NULL, annotations text, PRIMARY KEY (repo, subject, digest));
    CREATE INDEX referrers_by_digest ON referrers (repo, digest);
    CREATE TABLE blobs (digest text PRIMARY KEY, size bigint NOT NULL, origin text NOT NULL, upstream text, last_access bigint NOT NULL);
    CREATE INDEX blobs_by_access ON blobs (last_access);
    CREATE TABLE uploads (uuid text PRIMARY KEY, repo text NOT NULL, started_at bigint NOT NULL);
    CREATE TABLE tag_cache (
      upstream text NOT NULL, repo text NOT NULL, tag text NOT NULL, digest text NOT NULL,
      media_type text NOT NULL, checked_at bigint NOT NULL, PRIMARY KEY (upstream, repo, tag));
    CREATE TABLE negative_cache (
      upstream text NOT NULL, repo text NOT NULL, reference text NOT NULL, expires_at bigint NOT NULL,
      PRIMARY KEY (upstream, repo, reference));
    CREATE TABLE manifest_refs (manifest text NOT NULL, ref text NOT NULL, kind text NOT NULL, PRIMARY KEY (manifest, ref));
    CREATE INDEX manifest_refs_by_ref ON manifest_refs (ref);
    CREATE TABLE repo_manifests (repo text NOT NULL, digest text NOT NULL, origin text NOT NULL, added_at bigint NOT NULL, PRIMARY KEY (repo, digest));
    CREATE INDEX repo_manifests_by_digest ON repo_manifests (digest);
    CREATE TABLE local_repositories (name text PRIMARY KEY, since bigint NOT NULL);
    CREATE TABLE notify_outbox (id bigserial PRIMARY KEY, endpoint text NOT NULL, created_at bigint NOT NULL, event text NOT NULL);
    CREATE INDEX notify_outbox_by_endpoint ON notify_outbox (endpoint, id);
    CREATE TABLE leases (name text PRIMARY KEY, holder text NOT NULL, expires_at timestamptz NOT NULL);
    CREATE TABLE repo_use (repo text PRIMARY KEY, last_use bigint NOT NULL);
    `,
  },
  {
    description: 'web page: pull counts, traffic per minute, platforms of manifests',
    sql: `
    CREATE TABLE pull_counts (repo text NOT NULL, digest text NOT NULL, pulls bigint NOT NULL, last_pulled bigint NOT NULL, PRIMARY KEY (repo, digest));
    CREATE INDEX pull_counts_by_pulls ON pull_counts (pulls);
    CREATE TABLE traffic (
      minute bigint PRIMARY KEY, requests bigint NOT NULL, hits bigint NOT NULL, misses bigint NOT NULL,
      local_bytes bigint NOT NULL, cache_bytes bigint NOT NULL, fetched_bytes bigint NOT NULL);
    CREATE TABLE manifest_platforms (digest text PRIMARY KEY, platforms text NOT NULL);
    `,
  },
];
