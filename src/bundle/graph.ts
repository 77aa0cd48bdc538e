/**
 * Everything an image consists of, found by walking its manifests: child manifests of an index,
 * then config and layers of each manifest. Manifests come back children first, the order in which
 * they can be made visible (a parent only after everything it references).
 */
import type { Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';

export interface ContentReader {
  manifestBytes(digest: Digest): Promise<Buffer | undefined>;
  blobSize(digest: Digest): Promise<number | undefined>;
}

export interface ManifestNode { descriptor: Descriptor; bytes: Buffer }
export interface ImageGraph {
  manifests: ManifestNode[];
  blobs: Descriptor[];
  /** What is absent or wrong, with why; empty when the image is complete. */
  problems: Array<{ digest: Digest; problem: string }>;
}

export async function walkImage(reader: ContentReader, top: Descriptor): Promise<ImageGraph> {
  const graph: ImageGraph = { manifests: [], blobs: [], problems: [] };
  const seen = new Set<string>();
  const visit = async (d: Descriptor): Promise<void> => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    const bytes = await reader.manifestBytes(d.digest);
    if (!bytes) return void graph.problems.push({ digest: d.digest, problem: 'manifest missing' });
    if (bytes.length !== d.size) return void graph.problems.push({ digest: d.digest, problem: `manifest is ${bytes.length} bytes, its descriptor says ${d.size}` });
    let parsed;
    try {
      parsed = parseManifest(bytes);
    } catch (e) {
      return void graph.problems.push({ digest: d.digest, problem: `not a manifest: ${(e as Error).message}` });
    }
    for (const child of parsed.manifests) await visit(child);
    for (const b of parsed.blobs) {
      if (seen.has(b.digest)) continue;
      seen.add(b.digest);
      const size = await reader.blobSize(b.digest);
      if (size === undefined) graph.problems.push({ digest: b.digest, problem: 'blob missing' });
      else if (size !== b.size) graph.problems.push({ digest: b.digest, problem: `blob is ${size} bytes, its descriptor says ${b.size}` });
      else graph.blobs.push(b);
    }
    graph.manifests.push({ descriptor: d, bytes });
  };
  await visit(top);
  return graph;
}

/** Bytes an image holds (manifests and blobs). */
export const graphBytes = (g: ImageGraph): number =>
  g.manifests.reduce((n, m) => n + m.bytes.length, 0) + g.blobs.reduce((n, b) => n + b.size, 0);
