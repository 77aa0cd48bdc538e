/**
 * What images consist of, from the reference index alone: a manifest, its child manifests (an
 * index's platforms, and theirs), and the config, layers and blobs each references; optionally
 * the referrers (signatures, SBOMs) of any of them, as `stowage export` carries them. Sizes are
 * those of the blobs stored here: a cached image whose layers were never pulled counts what it has.
 */
import type { BrowseIndex } from '../../metadata/browse.js';

const CHUNK = 500;
const MAX_DEPTH = 4;

async function chunked<T>(items: readonly string[], fn: (chunk: string[]) => Promise<T[]>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(...await fn(items.slice(i, i + CHUNK)));
  return out;
}

/** For each top manifest, every digest it consists of (itself included). */
export async function imageParts(browse: BrowseIndex, tops: readonly string[], referrersIn?: string): Promise<Map<string, Set<string>>> {
  const parts = new Map(tops.map((t) => [t, new Set([t])]));
  // Which tops each manifest met along the way belongs to.
  let frontier = new Map(tops.map((t) => [t, new Set([t])]));
  for (let depth = 0; depth < MAX_DEPTH && frontier.size > 0; depth++) {
    const next = new Map<string, Set<string>>();
    const follow = (digest: string, owners: Set<string>) => {
      for (const o of owners) {
        const set = parts.get(o)!;
        if (set.has(digest)) continue;
        set.add(digest);
        let n = next.get(digest);
        if (!n) next.set(digest, n = new Set());
        n.add(o);
      }
    };
    for (const r of await chunked([...frontier.keys()], (c) => browse.refsOf(c))) {
      const owners = frontier.get(r.manifest)!;
      if (r.kind === 'manifest') follow(r.ref, owners);
      else if (r.kind !== 'subject') for (const o of owners) parts.get(o)!.add(r.ref);
    }
    if (referrersIn !== undefined) {
      for (const r of await chunked([...frontier.keys()], (c) => browse.referrers(referrersIn, c))) follow(r.digest, frontier.get(r.subject)!);
    }
    frontier = next;
  }
  return parts;
}

/** Stored sizes of the given digests. */
export async function sizesOf(browse: BrowseIndex, digests: Iterable<string>): Promise<Map<string, number>> {
  const all = [...new Set(digests)];
  const maps = await chunked(all, async (c) => [...(await browse.blobSizes(c))]);
  return new Map(maps);
}

export function bytesOf(set: Iterable<string>, sizes: Map<string, number>): { bytes: number; missing: number } {
  let bytes = 0;
  let missing = 0;
  for (const d of set) {
    const s = sizes.get(d);
    if (s === undefined) missing++; else bytes += s;
  }
  return { bytes, missing };
}
