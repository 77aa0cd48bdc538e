/**
 * `stowage import`: a bundle (ours, or any OCI image layout) into storage, verified before
 * anything becomes visible.
 *
 * Pass 1 reads the bundle once, in order. Each blob not already stored is written to a staging
 * file while it is hashed; only when digest and size verify is it moved into blobs/ (still
 * invisible: no repository links it). Damaged blobs are refused and remembered.
 * Pass 2 takes each image of index.json: its manifests and blobs must all be in storage now (from
 * this bundle or an earlier one); then blobs are linked, manifests put children first, and the tag
 * last. Cached images ("docker.io/library/alpine:3.20", named after a configured upstream) go to
 * their cache repository with a tag-cache entry, so every route serves them with no upstream and
 * the tag is revalidated once an upstream can be reached. Anything else is pushed content.
 * Re-running skips what is stored; a damaged image is refused and listed, the rest imported.
 */
import { randomUUID } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { MetadataIndex } from '../metadata/port.js';
import type { SignaturePolicy } from '../policy/policy.js';
import { createDigester, digestAlgorithm, digestFromHash, type Digest } from '../oci/digest.js';
import type { Reference, RepoName } from '../oci/reference.js';
import type { LocalRegistry } from '../registry/registry.js';
import { isPathNotFound } from '../storage/driver.js';
import { blobDataPath, STAGING_REPO, uploadDataPath, uploadDir } from '../storage/layout.js';
import { walkImage, type ContentReader } from './graph.js';
import { describeProblems } from './export.js';
import { formatImageName, LayoutError, parseImageName, readIndexFile, type ImageName, type LayoutEntry } from './layout.js';
import { NO_PROGRESS, type Progress } from './progress.js';
import type { BundleSource } from './source.js';

export interface ImportDeps {
  registry: LocalRegistry;
  metadata: MetadataIndex;
  /** Configured upstream names: a reference under one of them is cached content of it. */
  upstreams: readonly string[];
  log: Logger;
  progress?: Progress;
  now?: () => number;
  /** Signature policy: an image it refuses is not imported (listed as failed). */
  signatures?: SignaturePolicy;
}

export interface ImportedImage {
  name: string;
  digest: string;
  status: 'imported' | 'present' | 'failed';
  kind?: 'cached' | 'pushed' | 'referrer';
  reason?: string;
}

export interface ImportReport {
  images: ImportedImage[];
  blobs: { stored: number; present: number; refused: number };
  bytes: number;
  /** Damage that is not one image's: a broken tar, a part whose checksum differs. */
  problems: string[];
  ms: number;
}

export const BUNDLE_TASK = 'bundle';

export async function importBundle(source: BundleSource, deps: ImportDeps): Promise<ImportReport> {
  const started = Date.now();
  const progress = deps.progress ?? NO_PROGRESS;
  const report: ImportReport = { images: [], blobs: { stored: 0, present: 0, refused: 0 }, bytes: 0, problems: [], ms: 0 };
  const refused = new Map<string, string>();
  const storedNow = new Set<string>();

  progress.begin(BUNDLE_TASK, await source.totalBytes());
  const scan = await source.scan(async (digest, size, open) => {
    const have = await deps.registry.blobs.dataSize(digest);
    if (have === size) { report.blobs.present++; return; }
    if (have !== undefined) {
      // storage's copy verified against the digest when it was stored: the bundle's is wrong
      refused.set(digest, `${size} bytes in the bundle, the stored blob has ${have}`);
      report.blobs.refused++;
      return;
    }
    const problem = await stageBlob(deps, digest, size, open);
    if (problem) {
      refused.set(digest, problem);
      report.blobs.refused++;
      deps.log.warn({ digest, problem }, 'bundle blob refused');
    } else {
      storedNow.add(digest);
      report.blobs.stored++;
      report.bytes += size;
    }
  }, (n) => progress.advance(BUNDLE_TASK, n));
  report.problems.push(...scan.problems);
  progress.end(BUNDLE_TASK, scan.problems.length > 0 ? 'failed' : 'done', scan.problems[0]);

  let entries: LayoutEntry[] = [];
  if (!scan.index) report.problems.push('the bundle has no index.json (not an OCI image layout, or cut off before it)');
  else {
    try {
      entries = readIndexFile(scan.index);
    } catch (e) {
      if (!(e instanceof LayoutError)) throw e;
      report.problems.push(e.message);
    }
  }
  const reader: ContentReader = {
    manifestBytes: (d) => deps.registry.blobs.getContent(d),
    blobSize: async (d) => (refused.has(d) ? undefined : deps.registry.blobs.dataSize(d)),
  };
  const admit = deps.signatures?.forImport(entries, reader.manifestBytes);
  const used = new Set<string>();
  // Images first, then referrers (their subjects are in place by then).
  const ordered = [...entries.filter((e) => e.refName !== undefined), ...entries.filter((e) => e.refName === undefined)];
  for (const entry of ordered) {
    const result = await importEntry(entry, deps, reader, refused, storedNow, used, admit);
    report.images.push(result);
    if (result.status === 'failed') deps.log.warn({ image: result.name, reason: result.reason }, 'image refused');
  }
  // Blobs stored now that no image took (its image was damaged): indexed, so GC and eviction see them.
  for (const d of storedNow) {
    if (used.has(d)) continue;
    const size = await deps.registry.blobs.dataSize(d as Digest);
    if (size !== undefined) await deps.metadata.write((w) => w.recordBlob(d, size, 'cached'));
  }
  report.ms = Date.now() - started;
  return report;
}

/** Writes one blob to staging while hashing it; moves it into blobs/ only once it verified. */
async function stageBlob(deps: ImportDeps, digest: Digest, size: number, open: () => AsyncIterable<Buffer>): Promise<string | undefined> {
  const { storage } = deps.registry;
  const uuid = randomUUID();
  const staging = uploadDataPath(STAGING_REPO, uuid);
  await deps.metadata.write((w) => w.addUpload(uuid, STAGING_REPO, Date.now()));
  const hash = createDigester(digestAlgorithm(digest));
  let received = 0;
  const writer = await storage.writer(staging);
  try {
    const body = open();
    await pipeline(body, new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        hash.update(chunk);
        cb(null, chunk);
      },
    }), writer.stream);
    await writer.commit();
    if (received !== size) return `${received} of ${size} bytes (truncated)`;
    const actual = digestFromHash(digestAlgorithm(digest), hash);
    if (actual !== digest) return `content does not match its digest (it hashes to ${actual})`;
    await storage.move(staging, blobDataPath(digest));
    return undefined;
  } catch (e) {
    await writer.cancel().catch(() => undefined);
    return `could not be read: ${(e as Error).message}`;
  } finally {
    await storage.delete(uploadDir(STAGING_REPO, uuid)).catch((e: unknown) => { if (!isPathNotFound(e)) deps.log.warn({ err: e }, 'staging cleanup failed'); });
    await deps.metadata.write((w) => w.deleteUpload(uuid));
  }
}

async function importEntry(entry: LayoutEntry, deps: ImportDeps, reader: ContentReader, refused: Map<string, string>,
  storedNow: Set<string>, used: Set<string>, admit?: ReturnType<SignaturePolicy['forImport']>): Promise<ImportedImage> {
  const { registry, metadata } = deps;
  const top = entry.descriptor;
  let target: ImageName | undefined;
  let kind: ImportedImage['kind'];
  if (entry.refName !== undefined) {
    target = parseImageName(entry.refName);
    if (!target || (target.tag === undefined && target.digest === undefined)) {
      return { name: entry.refName, digest: top.digest, status: 'failed', reason: 'its ref name is not a full reference (repository:tag)' };
    }
    if (target.digest !== undefined && target.digest !== top.digest) {
      return { name: entry.refName, digest: top.digest, status: 'failed', reason: 'its ref name names another digest' };
    }
  } else if (entry.repository !== undefined) {
    target = parseImageName(`${entry.repository}@${top.digest}`);
    kind = 'referrer';
  }
  if (!target) return { name: top.digest, digest: top.digest, status: 'failed', reason: 'the index entry has no name (org.opencontainers.image.ref.name)' };
  const name = entry.refName ?? `${target.repo}@${top.digest}`;
  const repo: RepoName = target.repo;
  const upstream = deps.upstreams.find((u) => repo.startsWith(`${u}/`));
  kind ??= upstream ? 'cached' : 'pushed';
  const graph = await walkImage(reader, top);
  for (const p of graph.problems) {
    const why = refused.get(p.digest);
    if (why) p.problem = `refused: ${why}`;
  }
  if (graph.problems.length > 0) return { name, digest: top.digest, status: 'failed', kind, reason: describeProblems(graph) };
  const denied = await admit?.(repo, top.digest, graph.manifests[graph.manifests.length - 1]!.bytes, !upstream);
  if (denied) return { name, digest: top.digest, status: 'failed', kind, reason: denied };

  const origin = upstream ? 'cached' as const : 'local' as const;
  const tagRef: Reference | undefined = target.tag !== undefined ? { kind: 'tag', tag: target.tag } : undefined;
  let fresh = tagRef ? (await registry.manifests.resolve(repo, tagRef)) !== top.digest : false;
  for (const b of graph.blobs) {
    used.add(b.digest);
    if (storedNow.has(b.digest) || (await registry.blobs.sizeIn(repo, b.digest)) === undefined) fresh = true;
    await metadata.write((w) => w.recordBlob(b.digest, b.size, origin, upstream));
    await registry.blobs.link(repo, b.digest);
  }
  const opts = { verifyReferences: origin === 'local', origin, ...(upstream ? { upstream } : {}) };
  for (const m of graph.manifests) {
    used.add(m.descriptor.digest);
    const isTop = m === graph.manifests[graph.manifests.length - 1];
    if (!isTop || !tagRef) {
      if (!(await registry.manifests.resolve(repo, { kind: 'digest', digest: m.descriptor.digest }))) fresh = true;
      await registry.manifests.put(repo, { kind: 'digest', digest: m.descriptor.digest }, m.bytes, m.descriptor.mediaType, opts);
    }
  }
  if (tagRef) {
    await registry.manifests.put(repo, tagRef, graph.manifests[graph.manifests.length - 1]!.bytes, top.mediaType, opts);
    if (upstream && tagRef.kind === 'tag') {
      const tag = tagRef.tag;
      await metadata.write((w) => w.setTagCache(upstream, repo.slice(upstream.length + 1), tag, top.digest, top.mediaType, (deps.now ?? Date.now)()));
    }
  }
  return { name: formatImageName(target.tag !== undefined ? { repo, tag: target.tag } : { repo, digest: top.digest }), digest: top.digest, status: fresh ? 'imported' : 'present', kind };
}
