/**
 * How the PostgreSQL adapter carries out each recorded write operation: every operation adds its
 * statements to the batch's list, and the whole list is sent pipelined in one transaction.
 */
import type { PendingQuery, Row, TransactionSql } from 'postgres';
import type { OpTable } from '../batch.js';

export interface PgBatch { tx: TransactionSql; queries: Array<PendingQuery<Row[]>> }

export const PG_OPS: OpTable<PgBatch> = {
  setMeta: ({ tx, queries }, key, value) => {
    queries.push(tx`INSERT INTO meta (key, value) VALUES (${key}, ${value}) ON CONFLICT (key) DO UPDATE SET value = excluded.value`);
  },
  addRepository: ({ tx, queries }, name) => {
    queries.push(tx`INSERT INTO repositories (name, created_at) VALUES (${name}, ${Date.now()}) ON CONFLICT DO NOTHING`);
  },
  setTag: ({ tx, queries }, repo, tag, digest) => {
    queries.push(tx`INSERT INTO tags (repo, tag, digest, updated_at) VALUES (${repo}, ${tag}, ${digest}, ${Date.now()})
      ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`);
  },
  deleteTag: ({ tx, queries }, repo, tag) => { queries.push(tx`DELETE FROM tags WHERE repo = ${repo} AND tag = ${tag}`); },
  setManifestType: ({ tx, queries }, digest, mediaType) => {
    queries.push(tx`INSERT INTO manifest_types (digest, media_type) VALUES (${digest}, ${mediaType})
      ON CONFLICT (digest) DO UPDATE SET media_type = excluded.media_type`);
  },
  addReferrer: ({ tx, queries }, r) => {
    const annotations = r.annotations ? JSON.stringify(r.annotations) : null;
    queries.push(tx`INSERT INTO referrers (repo, subject, digest, media_type, artifact_type, size, annotations)
      VALUES (${r.repo}, ${r.subject}, ${r.digest}, ${r.mediaType}, ${r.artifactType ?? null}, ${r.size}, ${annotations})
      ON CONFLICT (repo, subject, digest) DO UPDATE SET media_type = excluded.media_type, artifact_type = excluded.artifact_type,
        size = excluded.size, annotations = excluded.annotations`);
  },
  deleteReferrer: ({ tx, queries }, repo, digest) => { queries.push(tx`DELETE FROM referrers WHERE repo = ${repo} AND digest = ${digest}`); },
  recordBlob: ({ tx, queries }, digest, size, origin, upstream) => {
    // A blob pushed here is local for good, even if an upstream's copy was cached first.
    queries.push(tx`INSERT INTO blobs (digest, size, origin, upstream, last_access) VALUES (${digest}, ${size}, ${origin}, ${upstream ?? null}, ${Date.now()})
      ON CONFLICT (digest) DO UPDATE SET last_access = GREATEST(blobs.last_access, excluded.last_access),
        origin = CASE WHEN excluded.origin = 'local' THEN 'local' ELSE blobs.origin END,
        upstream = CASE WHEN excluded.origin = 'local' THEN NULL ELSE blobs.upstream END`);
  },
  deleteBlob: ({ tx, queries }, digest) => { queries.push(tx`DELETE FROM blobs WHERE digest = ${digest}`); },
  addUpload: ({ tx, queries }, uuid, repo, startedAt) => {
    queries.push(tx`INSERT INTO uploads (uuid, repo, started_at) VALUES (${uuid}, ${repo}, ${startedAt}) ON CONFLICT DO NOTHING`);
  },
  deleteUpload: ({ tx, queries }, uuid) => { queries.push(tx`DELETE FROM uploads WHERE uuid = ${uuid}`); },
  setTagCache: ({ tx, queries }, upstream, repo, tag, digest, mediaType, checkedAt) => {
    queries.push(tx`INSERT INTO tag_cache (upstream, repo, tag, digest, media_type, checked_at)
      VALUES (${upstream}, ${repo}, ${tag}, ${digest}, ${mediaType}, ${checkedAt})
      ON CONFLICT (upstream, repo, tag) DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type, checked_at = excluded.checked_at`);
  },
  seedTagCache: ({ tx, queries }, upstream, repo, tag, digest, mediaType) => {
    queries.push(tx`INSERT INTO tag_cache (upstream, repo, tag, digest, media_type, checked_at)
      VALUES (${upstream}, ${repo}, ${tag}, ${digest}, ${mediaType}, 0) ON CONFLICT DO NOTHING`);
  },
  deleteTagCache: ({ tx, queries }, upstream, repo, tag) => {
    queries.push(tx`DELETE FROM tag_cache WHERE upstream = ${upstream} AND repo = ${repo} AND tag = ${tag}`);
  },
  deleteTagCacheOf: ({ tx, queries }, upstream, repo, digest) => {
    queries.push(tx`DELETE FROM tag_cache WHERE upstream = ${upstream} AND repo = ${repo} AND digest = ${digest}`);
  },
  setNegative: ({ tx, queries }, upstream, repo, reference, expiresAt) => {
    queries.push(tx`INSERT INTO negative_cache (upstream, repo, reference, expires_at) VALUES (${upstream}, ${repo}, ${reference}, ${expiresAt})
      ON CONFLICT (upstream, repo, reference) DO UPDATE SET expires_at = excluded.expires_at`);
  },
  clearNegative: ({ tx, queries }, upstream, repo, reference) => {
    queries.push(tx`DELETE FROM negative_cache WHERE upstream = ${upstream} AND repo = ${repo} AND reference = ${reference}`);
  },
  recordManifest: ({ tx, queries }, repo, manifest, origin, refs) => {
    queries.push(tx`INSERT INTO repo_manifests (repo, digest, origin, added_at) VALUES (${repo}, ${manifest}, ${origin}, ${Date.now()})
      ON CONFLICT (repo, digest) DO UPDATE SET origin = CASE WHEN excluded.origin = 'local' THEN 'local' ELSE repo_manifests.origin END`);
    if (refs.length > 0) {
      const rows = refs.map((r) => ({ manifest, ref: r.digest, kind: r.kind }));
      queries.push(tx`INSERT INTO manifest_refs ${tx(rows, 'manifest', 'ref', 'kind')} ON CONFLICT DO NOTHING`);
    }
  },
  removeManifestFrom: ({ tx, queries }, repo, manifest) => {
    queries.push(tx`DELETE FROM repo_manifests WHERE repo = ${repo} AND digest = ${manifest}`);
  },
  forgetManifestRefs: ({ tx, queries }, manifest) => { queries.push(tx`DELETE FROM manifest_refs WHERE manifest = ${manifest}`); },
  markLocal: ({ tx, queries }, repo) => {
    queries.push(tx`INSERT INTO local_repositories (name, since) VALUES (${repo}, ${Date.now()}) ON CONFLICT DO NOTHING`);
  },
  addOutbox: ({ tx, queries }, endpoint, event) => {
    queries.push(tx`INSERT INTO notify_outbox (endpoint, created_at, event) VALUES (${endpoint}, ${Date.now()}, ${event})`);
  },
};
