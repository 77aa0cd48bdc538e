/**
 * Manifests of a repository: bytes in blobs/ (like any blob), a revision link per repository and
 * tag links. Bytes are stored and served exactly as pushed; the pushed Content-Type is remembered
 * in the index (registry:2 derives it from the payload, which is the fallback here).
 */
import { LRUCache } from 'lru-cache';
import { RegistryError } from '../errors.js';
import type { Change, MetadataIndex, Origin } from '../metadata/port.js';
import { digestAlgorithm, digestOf, type Digest } from '../oci/digest.js';
import { inferMediaType, parseManifest, requireShape, type ParsedManifest } from '../oci/manifest.js';
import { bareMediaType } from '../oci/media-types.js';
import type { Reference, RepoName, Tag } from '../oci/reference.js';
import type { StorageDriver } from '../storage/driver.js';
import { revisionLinkDir, revisionLinkPath, tagCurrentLinkPath, tagDir, tagIndexLinkPath, tagsDir } from '../storage/layout.js';
import type { BlobStore } from './blob-store.js';
import type { Descriptor, EventSink } from '../notify/events.js';
import type { LocalRepositories } from './local-repositories.js';
import { baseName, deleteIfExists, listOrEmpty, readLink, writeLink } from './links.js';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  /** Always present (undefined without a subject): every stored manifest has one shape. */
  subject: Digest | undefined;
}

export interface PutManifestResult { digest: Digest; subject?: Digest }

export class ManifestStore {
  /** Manifest bytes by digest: immutable, so safe to cache. Bounded by total bytes. */
  private readonly content = new LRUCache<string, StoredManifest>({
    maxSize: 64 * 1024 * 1024,
    sizeCalculation: (m) => m.bytes.length + 200,
  });

  /**
   * "repo:tag" -> digest and "repo@digest" -> digest, read from link files. This process's own
   * writes keep them exact; other processes' (replicas on the same storage) arrive through the
   * index's change feed, and while that feed may be missing changes they are not trusted.
   */
  private readonly links = new LRUCache<string, string>({ max: 50_000 });

  constructor(
    private readonly storage: StorageDriver,
    private readonly metadata: MetadataIndex,
    private readonly blobs: BlobStore,
    private readonly local: LocalRepositories,
    private readonly events: EventSink,
  ) {
    metadata.changes.subscribe((c) => this.onChange(c));
  }

  private onChange(c: Change): void {
    switch (c.kind) {
      case 'tag': this.links.delete(`${c.repo}:${c.tag}`); break;
      case 'revision': this.links.delete(`${c.repo}@${c.digest}`); break;
      case 'blob': this.content.delete(c.digest); break;
      case 'all': this.links.clear(); this.content.clear(); break;
      default: break;
    }
  }

  /** A link read from storage, through the cache. */
  private async cachedLink(key: string, path: string): Promise<Digest | undefined> {
    const feed = this.metadata.changes;
    if (feed.live) {
      const hit = this.links.get(key) as Digest | undefined;
      if (hit) return hit;
    }
    const generation = feed.generation;
    const digest = await readLink(this.storage, path);
    if (digest && feed.live && feed.generation === generation) this.links.set(key, digest);
    return digest;
  }

  /** The digest a reference names in repo, or undefined. */
  async resolve(repo: RepoName, ref: Reference): Promise<Digest | undefined> {
    if (ref.kind === 'digest') return (await this.hasRevision(repo, ref.digest)) ? ref.digest : undefined;
    const digest = await this.cachedLink(`${repo}:${ref.tag}`, tagCurrentLinkPath(repo, ref.tag));
    if (!digest) return undefined;
    return (await this.hasRevision(repo, digest)) ? digest : undefined;
  }

  private async hasRevision(repo: RepoName, digest: Digest): Promise<boolean> {
    return (await this.cachedLink(`${repo}@${digest}`, revisionLinkPath(repo, digest))) === digest;
  }

  async get(repo: RepoName, ref: Reference): Promise<StoredManifest | undefined> {
    const digest = await this.resolve(repo, ref);
    if (!digest) return undefined;
    this.metadata.touchBlob(digest);
    return this.load(digest);
  }

  /** Reads manifest content by digest (no repository check). */
  async load(digest: Digest): Promise<StoredManifest | undefined> {
    const hit = this.content.get(digest);
    if (hit) return hit;
    const generation = this.metadata.changes.generation;
    const bytes = await this.blobs.getContent(digest);
    if (!bytes) return undefined;
    let parsed: ParsedManifest | undefined;
    try {
      parsed = parseManifest(bytes);
    } catch {
      parsed = undefined; // stored bytes are served as they are, even if we cannot read them
    }
    const mediaType = (await this.metadata.manifestType(digest)) ?? (parsed ? inferMediaType(parsed) : 'application/octet-stream');
    const m: StoredManifest = { digest, mediaType, bytes, subject: parsed?.subject?.digest };
    if (this.metadata.changes.generation === generation) this.content.set(digest, m);
    return m;
  }

  /**
   * Validates and stores a manifest. `ref` is the tag or digest it was pushed as; `verifyReferences`
   * is false for content cached from an upstream (its blobs are fetched lazily).
   */
  async put(repo: RepoName, ref: Reference, bytes: Buffer, contentType: string | undefined,
    opts: { verifyReferences: boolean; origin: Origin; upstream?: string } = { verifyReferences: true, origin: 'local' }): Promise<PutManifestResult> {
    if (bytes.length > MAX_MANIFEST_BYTES) {
      throw new RegistryError('MANIFEST_INVALID', 'manifest too big', { status: 413, detail: { limit: MAX_MANIFEST_BYTES } });
    }
    const algorithm = ref.kind === 'digest' ? digestAlgorithm(ref.digest) : 'sha256';
    const digest = digestOf(bytes, algorithm);
    if (ref.kind === 'digest' && ref.digest !== digest) {
      throw new RegistryError('DIGEST_INVALID', 'manifest digest did not match the reference', { detail: { reference: ref.digest, actual: digest } });
    }
    const parsed = parseManifest(bytes);
    const declared = bareMediaType(contentType);
    if (declared && parsed.declaredMediaType && declared !== parsed.declaredMediaType && !isGenericJson(declared)) {
      throw new RegistryError('MANIFEST_INVALID', 'Content-Type does not match the mediaType of the manifest', {
        detail: { contentType: declared, mediaType: parsed.declaredMediaType },
      });
    }
    const mediaType = declared && !isGenericJson(declared) ? declared : inferMediaType(parsed);
    if (opts.verifyReferences) {
      requireShape(mediaType, parsed);
      await this.verifyReferences(repo, parsed);
    }

    if (opts.origin === 'local') await this.local.mark(repo);
    const previousTag = ref.kind === 'tag' && opts.verifyReferences ? await readLink(this.storage, tagCurrentLinkPath(repo, ref.tag)) : undefined;
    // Order matters for crash safety: content, then revision link, then tag links, then index.
    await this.blobs.putVerified(digest, bytes, opts.origin, opts.upstream);
    await writeLink(this.storage, revisionLinkPath(repo, digest), digest);
    if (ref.kind === 'tag') await this.writeTag(repo, ref.tag, digest);
    await this.metadata.write((w) => {
      w.setManifestType(digest, mediaType);
      w.addRepository(repo);
      w.recordManifest(repo, digest, opts.origin, parsed.references);
      if (ref.kind === 'tag') w.setTag(repo, ref.tag, digest);
      this.events.record({
        action: opts.origin === 'local' ? 'push' : 'fetch',
        target: { kind: 'manifest', repository: repo, digest, size: bytes.length, mediaType, ...(ref.kind === 'tag' ? { tag: ref.tag } : {}), references: descriptorsOf(parsed) },
        ...(opts.upstream !== undefined ? { upstream: opts.upstream } : {}),
      }, w);
      if (parsed.subject) {
        w.addReferrer({
          repo, subject: parsed.subject.digest, digest, mediaType, size: bytes.length,
          ...(parsed.artifactType ? { artifactType: parsed.artifactType } : {}),
          ...(parsed.annotations ? { annotations: parsed.annotations } : {}),
        });
      }
    });
    if (opts.verifyReferences) await this.checkAfterCommit(repo, ref, digest, bytes, parsed, previousTag);
    const stored: StoredManifest = { digest, mediaType, bytes, subject: parsed.subject?.digest };
    this.content.set(digest, stored);
    return parsed.subject ? { digest, subject: parsed.subject.digest } : { digest };
  }

  /**
   * Looks again once the index holds the manifest. A garbage collection (maybe in another process)
   * that decided about these blobs before this push was in the index removes them only after
   * checking the index again (lifecycle/sweep.ts): so either it sees this push now and puts
   * everything back, or it was done before this look, which then finds the gap. The manifest's own
   * bytes and link are put back here; a missing blob fails the push and the tag goes back to what
   * it was, so no acknowledged image is ever incomplete.
   */
  private async checkAfterCommit(repo: RepoName, ref: Reference, digest: Digest, bytes: Buffer, parsed: ParsedManifest, previousTag: Digest | undefined): Promise<void> {
    if ((await this.blobs.dataSize(digest)) === undefined) await this.blobs.putVerified(digest, bytes, 'local');
    if ((await readLink(this.storage, revisionLinkPath(repo, digest))) !== digest) await writeLink(this.storage, revisionLinkPath(repo, digest), digest);
    const missing: string[] = [];
    for (const d of parsed.blobs) if ((await this.blobs.sizeInUncached(repo, d.digest)) === undefined) missing.push(d.digest);
    for (const d of parsed.manifests) if (!(await this.presentUncached(repo, d.digest))) missing.push(d.digest);
    if (missing.length === 0) return;
    if (ref.kind === 'tag') {
      if (previousTag) {
        await this.writeTag(repo, ref.tag, previousTag);
        await this.metadata.write((w) => w.setTag(repo, ref.tag, previousTag));
      } else {
        this.links.delete(`${repo}:${ref.tag}`);
        await deleteIfExists(this.storage, tagDir(repo, ref.tag));
        await this.metadata.write((w) => w.deleteTag(repo, ref.tag));
      }
    }
    throw new RegistryError('MANIFEST_BLOB_UNKNOWN', 'manifest references blobs removed while it was pushed; push them again', { detail: { missing: missing.sort() } });
  }

  async writeTag(repo: RepoName, tag: Tag, digest: Digest): Promise<void> {
    await writeLink(this.storage, tagIndexLinkPath(repo, tag, digest), digest);
    await writeLink(this.storage, tagCurrentLinkPath(repo, tag), digest);
    this.links.set(`${repo}:${tag}`, digest);
  }

  /** Forgets cached manifest bytes (their blob was evicted). */
  forget(digest: Digest): void {
    this.content.delete(digest);
  }

  /**
   * Removes repo's revision link to a manifest and its index rows, and nothing else: no tag is
   * touched (garbage collection and eviction decide about tags themselves, and must not remove one
   * a concurrent push just wrote). The bytes stay in blobs/ for the blob sweep.
   */
  async removeRevision(repo: RepoName, digest: Digest): Promise<void> {
    await this.unlinkRevision(repo, digest);
    await this.forgetRevision(repo, digest);
  }

  /** The storage half of removeRevision: clients no longer find the manifest in repo. */
  async unlinkRevision(repo: RepoName, digest: Digest): Promise<void> {
    this.links.delete(`${repo}@${digest}`);
    await deleteIfExists(this.storage, revisionLinkDir(repo, digest));
  }

  /** Undoes unlinkRevision (the index still has the manifest in repo). */
  async relinkRevision(repo: RepoName, digest: Digest): Promise<void> {
    await writeLink(this.storage, revisionLinkPath(repo, digest), digest);
  }

  /** The index half of removeRevision: what repo held no longer keeps its blobs referenced. */
  forgetRevision(repo: RepoName, digest: Digest): Promise<void> {
    return this.metadata.write((w) => {
      w.deleteReferrer(repo, digest);
      w.removeManifestFrom(repo, digest);
    });
  }

  /** Deletes a tag (ref is a tag) or a manifest and every tag pointing to it (ref is a digest). */
  async delete(repo: RepoName, ref: Reference): Promise<void> {
    if (ref.kind === 'tag') {
      if (!(await readLink(this.storage, tagCurrentLinkPath(repo, ref.tag)))) throw manifestUnknown(ref.tag);
      this.links.delete(`${repo}:${ref.tag}`);
      await deleteIfExists(this.storage, tagDir(repo, ref.tag));
      await this.metadata.write((w) => {
        w.deleteTag(repo, ref.tag);
        this.events.record({ action: 'delete', target: { kind: 'tag', repository: repo, tag: ref.tag } }, w);
      });
      return;
    }
    if (!(await this.resolve(repo, ref))) throw manifestUnknown(ref.digest);
    // Storage, not the index, is the truth about which tags point here.
    const tags = new Set(await this.metadata.deleteTagsOf(repo, ref.digest));
    for (const dir of await listOrEmpty(this.storage, tagsDir(repo))) {
      const tag = baseName(dir);
      if ((await readLink(this.storage, tagCurrentLinkPath(repo, tag as Tag))) === ref.digest) tags.add(tag);
    }
    for (const tag of tags) {
      this.links.delete(`${repo}:${tag}`);
      await deleteIfExists(this.storage, tagDir(repo, tag as Tag));
    }
    this.links.delete(`${repo}@${ref.digest}`);
    await deleteIfExists(this.storage, revisionLinkDir(repo, ref.digest));
    await this.metadata.write((w) => {
      for (const tag of tags) w.changed({ kind: 'tag', repo, tag });
      w.deleteReferrer(repo, ref.digest);
      w.removeManifestFrom(repo, ref.digest);
      this.events.record({ action: 'delete', target: { kind: 'manifest', repository: repo, digest: ref.digest } }, w);
    });
  }

  /** A revision of repo with its bytes, read from storage (not this process's caches): see BlobStore.sizeInUncached. */
  private async presentUncached(repo: RepoName, digest: Digest): Promise<boolean> {
    const found = (await readLink(this.storage, revisionLinkPath(repo, digest))) === digest && (await this.blobs.dataSize(digest)) !== undefined;
    if (found) this.links.set(`${repo}@${digest}`, digest); else this.links.delete(`${repo}@${digest}`);
    if (found) this.metadata.touchBlob(digest);
    return found;
  }

  private async verifyReferences(repo: RepoName, parsed: ParsedManifest): Promise<void> {
    // Use is recorded before presence is checked: a sweep running meanwhile (garbage collection,
    // maybe in another process) sees it and puts back what it set aside (lifecycle/sweep.ts).
    await this.metadata.markUsed([...parsed.blobs, ...parsed.manifests].map((d) => d.digest));
    const missing: string[] = [];
    await Promise.all([
      ...parsed.blobs.map(async (d) => { if ((await this.blobs.sizeInUncached(repo, d.digest)) === undefined) missing.push(d.digest); }),
      ...parsed.manifests.map(async (d) => { if (!(await this.presentUncached(repo, d.digest))) missing.push(d.digest); }),
    ]);
    if (missing.length > 0) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', 'manifest references unknown blobs or manifests', { detail: { missing: missing.sort() } });
    }
  }

}

/** The descriptors a manifest references (config, layers, blobs, child manifests, subject): target.references. */
export function descriptorsOf(parsed: ParsedManifest): Descriptor[] {
  const all = [...parsed.blobs, ...parsed.manifests, ...(parsed.subject ? [parsed.subject] : [])];
  return all.map((d) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size }));
}

const isGenericJson = (t: string): boolean => t === 'application/json' || t === 'application/octet-stream' || t === 'text/plain';

export function manifestUnknown(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { reference } });
}
