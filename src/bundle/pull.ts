/**
 * Pulling an image through the cache as a client would, without a client: the manifest (an index
 * is stored whole), then every child manifest (or only those of the wanted platforms), then every
 * blob, each fetched once and verified by the pull-through cache itself (a few at a time, by the
 * layer prefetch queue). What is cached already
 * is not fetched again. Used by `stowage prefetch`, and by `stowage export` to complete a cached
 * image before it is written out.
 */
import type { Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { ALL_MANIFEST_TYPES } from '../oci/media-types.js';
import type { Reference, RepoName } from '../oci/reference.js';
import type { PullThrough } from '../proxy/pull-through.js';

export interface Platform { os: string; architecture: string; variant?: string }

/** "linux/amd64,linux/arm64/v8" -> platforms. */
export function parsePlatforms(text: string): Platform[] {
  return text.split(',').map((p) => p.trim()).filter(Boolean).map((p) => {
    const [os, architecture, variant] = p.split('/');
    if (!os || !architecture) throw new Error(`not a platform: ${JSON.stringify(p)} (os/arch[/variant], e.g. linux/amd64)`);
    return variant ? { os, architecture, variant } : { os, architecture };
  });
}

export interface PullResult {
  digest: Digest;
  mediaType: string;
  /** Bytes fetched from the upstream now, and bytes that were cached already. */
  fetched: number;
  cached: number;
  blobs: number;
}

export interface PullOptions {
  platforms?: Platform[];
  onTotal?: (bytes: number) => void;
  onBytes?: (bytes: number) => void;
}

export async function pullImage(proxy: PullThrough, repo: RepoName, ref: Reference, options: PullOptions = {}): Promise<PullResult> {
  const top = await proxy.manifest(repo, ref, undefined, () => [...ALL_MANIFEST_TYPES]);
  const result: PullResult = { digest: top.digest, mediaType: top.mediaType, fetched: 0, cached: 0, blobs: 0 };
  const seen = new Set<string>();
  const visit = async (bytes: Buffer): Promise<void> => {
    const parsed = parseManifest(bytes);
    const children = parsed.manifests.filter((_d, i) => wanted(bytes, i, options.platforms));
    for (const child of children) {
      if (seen.has(child.digest)) continue;
      seen.add(child.digest);
      const m = await proxy.manifest(repo, { kind: 'digest', digest: child.digest }, undefined, () => [...ALL_MANIFEST_TYPES]);
      await visit(m.bytes);
    }
    const fresh = parsed.blobs.filter((b) => !seen.has(b.digest) && seen.add(b.digest));
    if (fresh.length === 0) return;
    for (const b of fresh) options.onTotal?.(b.size);
    result.blobs += fresh.length;
    // The layer prefetch queue (proxy/prefetch.ts) fetches them a few at a time, as after a
    // client's manifest GET; what it left (failed, or another client's fill) is asked for below.
    const outcomes = await proxy.prefetchWhole(repo, bytes);
    const fetchedNow = new Set(outcomes.filter((o) => o.status === 'fetched').map((o) => o.digest));
    for (const b of fresh) {
      const answer = await proxy.blob(repo, b.digest, undefined);
      if (answer.complete) {
        if (fetchedNow.has(b.digest)) result.fetched += b.size;
        else result.cached += b.size;
        options.onBytes?.(b.size);
        continue;
      }
      const body = await answer.open();
      for await (const chunk of body as AsyncIterable<Buffer>) {
        result.fetched += chunk.length;
        options.onBytes?.(chunk.length);
      }
      await answer.whenComplete();
    }
  };
  await visit(top.bytes);
  return result;
}

/** Whether child i of an index is one of the wanted platforms (all when none are named). */
function wanted(indexBytes: Buffer, i: number, platforms: Platform[] | undefined): boolean {
  if (!platforms || platforms.length === 0) return true;
  const doc = JSON.parse(indexBytes.toString('utf8')) as { manifests?: Array<{ platform?: Partial<Platform> }> };
  const p = doc.manifests?.[i]?.platform;
  if (!p) return true; // an attestation or artifact without a platform travels with the image
  return platforms.some((w) => w.os === p.os && w.architecture === p.architecture && (w.variant === undefined || w.variant === p.variant));
}
