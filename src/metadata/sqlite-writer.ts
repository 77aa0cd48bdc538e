/** How the SQLite adapter carries out each recorded write operation (inside one transaction). */
import type { OpTable } from './batch.js';
import type { SqliteStatements } from './sqlite-statements.js';

export const SQLITE_OPS: OpTable<SqliteStatements> = {
  setMeta: (s, key, value) => { s.setMeta.run(key, value); },
  addRepository: (s, name) => { s.addRepo.run(name, Date.now()); },
  setTag: (s, repo, tag, digest) => { s.setTag.run(repo, tag, digest, Date.now()); },
  deleteTag: (s, repo, tag) => { s.deleteTag.run(repo, tag); },
  setManifestType: (s, digest, mediaType) => { s.setType.run(digest, mediaType); },
  addReferrer: (s, r) => {
    s.addReferrer.run(r.repo, r.subject, r.digest, r.mediaType, r.artifactType ?? null, r.size, r.annotations ? JSON.stringify(r.annotations) : null);
  },
  deleteReferrer: (s, repo, digest) => { s.deleteReferrer.run(repo, digest); },
  recordBlob: (s, digest, size, origin, upstream) => { s.putBlob.run(digest, size, origin, upstream ?? null, Date.now()); },
  deleteBlob: (s, digest) => { s.deleteBlob.run(digest); },
  addUpload: (s, uuid, repo, startedAt) => { s.addUpload.run(uuid, repo, startedAt); },
  deleteUpload: (s, uuid) => { s.deleteUpload.run(uuid); },
  setTagCache: (s, upstream, repo, tag, digest, mediaType, checkedAt) => { s.setTagCache.run(upstream, repo, tag, digest, mediaType, checkedAt); },
  seedTagCache: (s, upstream, repo, tag, digest, mediaType) => { s.seedTagCache.run(upstream, repo, tag, digest, mediaType); },
  deleteTagCache: (s, upstream, repo, tag) => { s.deleteTagCache.run(upstream, repo, tag); },
  deleteTagCacheOf: (s, upstream, repo, digest) => { s.deleteTagCacheOf.run(upstream, repo, digest); },
  setNegative: (s, upstream, repo, reference, expiresAt) => { s.setNegative.run(upstream, repo, reference, expiresAt); },
  clearNegative: (s, upstream, repo, reference) => { s.deleteNegative.run(upstream, repo, reference); },
  recordManifest: (s, repo, manifest, origin, refs) => {
    s.addRepoManifest.run(repo, manifest, origin, Date.now());
    for (const r of refs) s.addRef.run(manifest, r.digest, r.kind);
  },
  removeManifestFrom: (s, repo, manifest) => { s.removeRepoManifest.run(repo, manifest); },
  forgetManifestRefs: (s, manifest) => { s.forgetRefs.run(manifest); },
  markLocal: (s, repo) => { s.markLocal.run(repo, Date.now()); },
  addOutbox: (s, endpoint, event) => { s.outboxAdd.run(endpoint, Date.now(), event); },
};
