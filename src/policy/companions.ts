/**
 * Classic cosign signatures live under a tag of their own (`sha256-<hex>.sig`), so an export that
 * names an image would leave them behind (OCI 1.1 referrers travel by themselves). This finds the
 * signature tags held for images, and for the platform manifests of an index, to export with them.
 */
import type { Digest } from '../oci/digest.js';
import type { RepoName, Tag } from '../oci/reference.js';
import type { LocalRegistry } from '../registry/registry.js';
import { signatureTag, tryParse } from './formats.js';

export interface ImageRef { repo: RepoName; tag?: Tag; digest?: Digest }

export async function signatureTagsFor(registry: LocalRegistry, images: readonly ImageRef[]): Promise<Array<{ repo: RepoName; tag: Tag }>> {
  const out = new Map<string, { repo: RepoName; tag: Tag }>();
  for (const image of images) {
    const digest = image.digest ?? (image.tag !== undefined ? await registry.manifests.resolve(image.repo, { kind: 'tag', tag: image.tag }) : undefined);
    if (!digest) continue;
    const m = await registry.manifests.load(digest);
    const children = (m ? tryParse(m.bytes)?.manifests ?? [] : []).map((c) => c.digest);
    for (const d of [digest, ...children]) {
      const tag = signatureTag(d);
      if (await registry.manifests.resolve(image.repo, { kind: 'tag', tag })) out.set(`${image.repo}:${tag}`, { repo: image.repo, tag });
    }
  }
  return [...out.values()];
}
