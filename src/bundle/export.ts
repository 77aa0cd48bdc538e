/**
 * `stowage export`: selected images (and their referrers) written as an OCI image layout.
 * First every image is made complete and planned: a cached image that lacks platforms or layers
 * is completed through the cache (when an upstream can be reached), then its manifests and blobs
 * are walked in storage. Then index.json is written, naming each image by its full reference,
 * and the blobs follow, each once, skipping those the previous bundle held (--exclude-bundle).
 * Storage is read directly: exporting does not count as a pull in the access records.
 */
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { MetadataIndex } from '../metadata/port.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { RepoName } from '../oci/reference.js';
import type { PullThrough } from '../proxy/pull-through.js';
import type { LocalRegistry } from '../registry/registry.js';
import { blobDataPath } from '../storage/layout.js';
import { graphBytes, walkImage, type ContentReader, type ImageGraph } from './graph.js';
import { formatImageName, indexFile, type LayoutEntry } from './layout.js';
import { counted, NO_PROGRESS, type Progress } from './progress.js';
import { pullImage } from './pull.js';
import type { SelectedImage } from './select.js';
import type { BundleSink } from './sink.js';

export interface ExportDeps {
  registry: LocalRegistry;
  metadata: MetadataIndex;
  proxy?: PullThrough;
  log: Logger;
  progress?: Progress;
}

export interface ExportedImage {
  name: string;
  digest?: string;
  status: 'exported' | 'failed';
  /** Bytes of the image written into this bundle (shared and excluded blobs are not counted). */
  bytes: number;
  referrers: number;
  reason?: string;
}

export interface ExportReport {
  images: ExportedImage[];
  blobs: { written: number; excluded: number; shared: number };
  bytes: number;
  files: string[];
  ms: number;
}

interface Planned {
  image: ExportedImage;
  graphs: ImageGraph[];
}

export async function exportImages(selected: SelectedImage[], deps: ExportDeps, sink: BundleSink, exclude: ReadonlySet<string> = new Set()): Promise<ExportReport> {
  const started = Date.now();
  const progress = deps.progress ?? NO_PROGRESS;
  const reader: ContentReader = {
    manifestBytes: (d) => deps.registry.blobs.getContent(d),
    blobSize: (d) => deps.registry.blobs.dataSize(d),
  };
  const entries: LayoutEntry[] = [];
  const planned: Planned[] = [];
  const report: ExportReport = { images: [], blobs: { written: 0, excluded: 0, shared: 0 }, bytes: 0, files: [], ms: 0 };
  const referrersSeen = new Set<string>();

  for (const s of selected) {
    const name = formatImageName(s.name);
    const image: ExportedImage = { name, status: 'exported', bytes: 0, referrers: 0 };
    report.images.push(image);
    try {
      const top = await completeImage(s, deps);
      image.digest = top.digest;
      const graph = await walkImage(reader, top);
      if (graph.problems.length > 0) throw new Error(describeProblems(graph));
      const graphs = [graph];
      // Referrers of any manifest of the image, and theirs in turn.
      const queue = graph.manifests.map((m) => m.descriptor.digest);
      while (queue.length > 0) {
        const subject = queue.shift()!;
        for (const r of await deps.metadata.listReferrers(s.name.repo, subject)) {
          if (referrersSeen.has(r.digest)) continue;
          referrersSeen.add(r.digest);
          const descriptor: Descriptor = { mediaType: r.media_type, digest: r.digest as Digest, size: r.size, ...(r.artifact_type ? { artifactType: r.artifact_type } : {}) };
          const rg = await walkImage(reader, descriptor);
          if (rg.problems.length > 0) {
            deps.log.warn({ image: name, referrer: r.digest, problems: rg.problems }, 'referrer incomplete; not exported');
            continue;
          }
          graphs.push(rg);
          entries.push({ descriptor, repository: s.name.repo });
          image.referrers++;
          queue.push(descriptor.digest);
        }
      }
      entries.push({ descriptor: top, refName: name });
      planned.push({ image, graphs });
    } catch (e) {
      image.status = 'failed';
      image.reason = (e as Error).message;
      progress.end(name, 'failed', image.reason);
    }
  }
  // index.json lists images before their referrers' entries were pushed: order them images first.
  entries.sort((a, b) => Number(a.refName === undefined) - Number(b.refName === undefined));

  await sink.begin(indexFile(entries));
  const written = new Set<string>();
  try {
    for (const p of planned) {
      const name = p.image.name;
      progress.begin(name, p.graphs.reduce((n, g) => n + graphBytes(g), 0));
      try {
        for (const g of p.graphs) {
          const items: Array<{ digest: Digest; size: number; body: () => Promise<Readable> }> = [
            ...g.blobs.map((b) => ({ digest: b.digest, size: b.size, body: () => deps.registry.storage.reader(blobDataPath(b.digest)) })),
            ...g.manifests.map((m) => ({ digest: m.descriptor.digest, size: m.bytes.length, body: async () => Readable.from([m.bytes]) })),
          ];
          for (const item of items) {
            if (written.has(item.digest)) { report.blobs.shared++; progress.advance(name, item.size); continue; }
            written.add(item.digest);
            if (exclude.has(item.digest)) { report.blobs.excluded++; progress.advance(name, item.size); continue; }
            if (await sink.has(item.digest, item.size)) { report.blobs.shared++; progress.advance(name, item.size); continue; }
            await sink.writeBlob(item.digest, item.size, counted(await item.body(), (n) => progress.advance(name, n)));
            report.blobs.written++;
            report.bytes += item.size;
            p.image.bytes += item.size;
          }
        }
        progress.end(name, 'done');
      } catch (e) {
        p.image.status = 'failed';
        p.image.reason = `writing failed: ${(e as Error).message}`;
        progress.end(name, 'failed', p.image.reason);
        if (sink.sequential) throw e; // a tar cannot skip a half-written entry
      }
    }
    report.files = await sink.finish();
  } catch (e) {
    await sink.abort();
    throw e;
  }
  report.ms = Date.now() - started;
  return report;
}

/** The image's top descriptor, with every platform and blob in storage (fetched if need be). */
async function completeImage(s: SelectedImage, deps: ExportDeps): Promise<Descriptor> {
  const { registry, proxy } = deps;
  const repo: RepoName = s.name.repo;
  let digest = s.name.digest ?? await registry.manifests.resolve(repo, { kind: 'tag', tag: s.name.tag! });
  if (s.upstream && proxy) {
    // Complete what is cached (a client may have pulled one platform); a tag not cached yet is pulled now.
    const pulled = await pullImage(proxy, repo, digest ? { kind: 'digest', digest } : { kind: 'tag', tag: s.name.tag! });
    digest = pulled.digest;
  }
  if (!digest) throw new Error('not in storage');
  const m = await registry.manifests.load(digest);
  if (!m) throw new Error(`manifest ${digest} is not in storage`);
  return { mediaType: m.mediaType, digest, size: m.bytes.length };
}

export function describeProblems(g: ImageGraph): string {
  const shown = g.problems.slice(0, 3).map((p) => `${p.digest}: ${p.problem}`).join('; ');
  return g.problems.length > 3 ? `${shown}; and ${g.problems.length - 3} more` : shown;
}
