/**
 * Rebuilds the metadata index from storage: repositories, tags, manifest media types (inferred),
 * referrers, blob sizes and open upload sessions. Storage is the truth; the index is a cache of it.
 */
import type { Logger } from 'pino';
import type { MetadataIndex, Origin } from '../metadata/port.js';
import { tryParseDigest, type Digest } from '../oci/digest.js';
import { inferMediaType, parseManifest } from '../oci/manifest.js';
import { isValidRepoName, type RepoName, type Tag } from '../oci/reference.js';
import type { StorageDriver } from '../storage/driver.js';
import { BLOBS_ROOT, REPO_MARKERS, REPOSITORIES_ROOT, revisionsDir, tagCurrentLinkPath, tagsDir, uploadsDir, uploadStartedAtPath } from '../storage/layout.js';
import { baseName, listOrEmpty, readLink } from './links.js';
import type { BlobStore } from './blob-store.js';

export interface ReindexResult { repositories: number; tags: number; manifests: number; referrers: number; blobs: number; uploads: number }

/** Every repository name under repositories/ (a directory holding _manifests, _layers or _uploads). */
export async function* walkRepositories(storage: StorageDriver, dir = REPOSITORIES_ROOT, prefix = ''): AsyncGenerator<RepoName> {
  const children = await listOrEmpty(storage, dir);
  if (children.some((c) => REPO_MARKERS.has(baseName(c))) && isValidRepoName(prefix)) yield prefix;
  for (const child of children) {
    const name = baseName(child);
    if (name.startsWith('_')) continue;
    yield* walkRepositories(storage, child, prefix ? `${prefix}/${name}` : name);
  }
}

/**
 * `cachePrefixes` are the upstream names: tags under "<name>/..." are cached upstream tags, and
 * are recorded as never checked, so they are revalidated (not served as local forever).
 */
export async function reindex(storage: StorageDriver, metadata: MetadataIndex, blobs: BlobStore, log: Logger,
  cachePrefixes: readonly string[] = []): Promise<ReindexResult> {
  const started = Date.now();
  const result: ReindexResult = { repositories: 0, tags: 0, manifests: 0, referrers: 0, blobs: 0, uploads: 0 };
  await metadata.clearContentIndex();
  const origins = new BlobOrigins();
  for await (const repo of walkRepositories(storage)) {
    const revisions: Digest[] = [];
    for (const algDir of await listOrEmpty(storage, revisionsDir(repo))) {
      for (const hexDir of await listOrEmpty(storage, algDir)) {
        const d = tryParseDigest(`${baseName(algDir)}:${baseName(hexDir)}`);
        if (d && (await readLink(storage, `${hexDir}/link`)) === d) revisions.push(d);
      }
    }
    const tags: Array<[string, Digest]> = [];
    for (const tagPath of await listOrEmpty(storage, tagsDir(repo))) {
      const tag = baseName(tagPath) as Tag;
      const d = await readLink(storage, tagCurrentLinkPath(repo, tag));
      if (d) tags.push([tag, d]);
    }
    const manifests: Array<{ digest: Digest; bytes: Buffer }> = [];
    for (const d of revisions) {
      const bytes = await blobs.getContent(d);
      if (bytes) manifests.push({ digest: d, bytes });
    }
    const uploads: Array<[string, number]> = [];
    for (const u of await listOrEmpty(storage, uploadsDir(repo))) {
      const uuid = baseName(u);
      let startedAt = Date.now();
      try {
        startedAt = Date.parse((await storage.getContent(uploadStartedAtPath(repo, uuid))).toString('utf8')) || startedAt;
      } catch { /* a session without startedat is purged on the usual schedule from now */ }
      uploads.push([uuid, startedAt]);
    }
    const prefix = cachePrefixes.find((p) => repo.startsWith(`${p}/`));
    // Media types the index already has (pushed with a Content-Type) are kept; the rest inferred.
    const knownTypes = new Map<string, string | undefined>();
    for (const d of new Set([...tags.map(([, d]) => d), ...manifests.map((m) => m.digest)])) knownTypes.set(d, await metadata.manifestType(d));
    await metadata.write((w) => {
      if (manifests.length > 0 || tags.length > 0) w.addRepository(repo);
      // Outside the cache prefixes every repository was written by pushes.
      if (!prefix) w.markLocal(repo);
      for (const [tag, d] of tags) {
        w.setTag(repo, tag, d);
        if (prefix) w.seedTagCache(prefix, repo.slice(prefix.length + 1), tag, d, knownTypes.get(d) ?? '');
      }
      for (const m of manifests) {
        let parsed;
        try { parsed = parseManifest(m.bytes); } catch { continue; }
        if (!knownTypes.get(m.digest)) w.setManifestType(m.digest, inferMediaType(parsed));
        w.recordManifest(repo, m.digest, prefix ? 'cached' : 'local', parsed.references);
        origins.note(prefix, [m.digest, ...parsed.references.map((r) => r.digest)]);
        if (parsed.subject) {
          w.addReferrer({
            repo, subject: parsed.subject.digest, digest: m.digest, mediaType: inferMediaType(parsed), size: m.bytes.length,
            ...(parsed.artifactType ? { artifactType: parsed.artifactType } : {}),
            ...(parsed.annotations ? { annotations: parsed.annotations } : {}),
          });
          result.referrers++;
        }
      }
      for (const [uuid, t] of uploads) w.addUpload(uuid, repo, t);
    });
    result.repositories++;
    result.tags += tags.length;
    result.manifests += manifests.length;
    result.uploads += uploads.length;
  }
  result.blobs = await indexBlobs(storage, metadata, origins);
  await metadata.write((w) => w.setMeta('indexed_at', new Date().toISOString()));
  log.info({ ...result, ms: Date.now() - started }, 'reindex complete');
  return result;
}

/**
 * Whether each blob is pushed content or an upstream's cached content, from the manifests that
 * reference it: pushed if any pushed manifest does (or nothing does: a push in progress), else
 * cached from the upstream of the first cache repository seen. So the cache budget can evict what
 * was cached, and never what was pushed, after a reindex too (moving onto PostgreSQL, say).
 */
class BlobOrigins {
  private readonly local = new Set<string>();
  private readonly cached = new Map<string, string>();

  note(prefix: string | undefined, digests: readonly string[]): void {
    for (const d of digests) {
      if (prefix === undefined) this.local.add(d);
      else if (!this.cached.has(d)) this.cached.set(d, prefix);
    }
  }

  of(digest: string): { origin: Origin; upstream?: string } {
    const upstream = this.cached.get(digest);
    return this.local.has(digest) || upstream === undefined ? { origin: 'local' } : { origin: 'cached', upstream };
  }
}

async function indexBlobs(storage: StorageDriver, metadata: MetadataIndex, origins: BlobOrigins): Promise<number> {
  let count = 0;
  for (const algDir of await listOrEmpty(storage, BLOBS_ROOT)) {
    for (const prefixDir of await listOrEmpty(storage, algDir)) {
      const batch: Array<[Digest, number]> = [];
      for (const hexDir of await listOrEmpty(storage, prefixDir)) {
        const d = tryParseDigest(`${baseName(algDir)}:${baseName(hexDir)}`);
        if (!d) continue;
        try {
          batch.push([d, (await storage.stat(`${hexDir}/data`)).size]);
        } catch { /* a directory without data is not a blob */ }
      }
      await metadata.write((w) => {
        for (const [d, size] of batch) {
          const o = origins.of(d);
          w.recordBlob(d, size, o.origin, o.upstream);
        }
      });
      count += batch.length;
    }
  }
  return count;
}
