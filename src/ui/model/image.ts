/**
 * One manifest of a repository: an index's platforms, or an image's layers and config; its
 * referrers (signatures, SBOMs, attestations) grouped by artifact type; the tags pointing at it.
 */
import type { ManifestRecord, ReferrerInfo } from '../../metadata/browse.js';
import type { Viewer } from '../access.js';
import { pullCommands, type Endpoint, type PullCommand } from '../pull-commands.js';
import type { UiContext } from './context.js';
import { loadConfig, loadManifest, type ChildManifest, type ImageConfig, type LayerView, type ManifestDoc } from './describe.js';
import { imageRoute } from './repository.js';

export interface ImageView {
  repository: string;
  manifest: ManifestRecord;
  tags: string[];
  kind: 'index' | 'image' | 'artifact' | 'unreadable';
  mediaType: string | undefined;
  artifactType: string | undefined;
  annotations: Record<string, string>;
  /** An index's children, with whether each is stored here. */
  platforms: Array<ChildManifest & { stored: boolean }>;
  config: { digest: string; mediaType: string; size: number; stored: boolean } | undefined;
  image: ImageConfig | undefined;
  layers: LayerView[];
  /** Total size the manifest declares for its config and layers. */
  layerBytes: number;
  subject: string | undefined;
  referrers: Array<{ artifactType: string; items: ReferrerInfo[] }>;
  pull: PullCommand[];
  mayDelete: boolean;
}

function kindOf(doc: ManifestDoc | undefined): ImageView['kind'] {
  if (!doc) return 'unreadable';
  if (doc.manifests.length > 0 || doc.mediaType?.includes('index') || doc.mediaType?.includes('manifest.list')) return 'index';
  if (doc.artifactType || doc.subject || (doc.config && !doc.config.mediaType.includes('image.config') && !doc.config.mediaType.includes('container.image'))) return 'artifact';
  return 'image';
}

export async function imageView(ctx: UiContext, viewer: Viewer, repo: string, digest: string, at: Endpoint): Promise<ImageView | undefined> {
  if (!viewer.mayPull(repo)) return undefined;
  const manifest = await ctx.browse.manifest(repo, digest);
  if (!manifest) return undefined;
  const loaded = await loadManifest(ctx, digest);
  const doc = loaded?.doc;
  const children = doc?.manifests ?? [];
  const layers = doc?.layers ?? [];
  const stored = await ctx.browse.blobSizes([...children.map((c) => c.digest), ...layers.map((l) => l.digest), ...(doc?.config ? [doc.config.digest] : [])]);
  const referrers = new Map<string, ReferrerInfo[]>();
  for (const r of await ctx.browse.referrers(repo, [digest])) {
    const type = r.artifactType ?? r.mediaType;
    referrers.set(type, [...(referrers.get(type) ?? []), r]);
  }
  const kind = kindOf(doc);
  return {
    repository: repo,
    manifest,
    tags: await ctx.browse.tagsOf(repo, digest),
    kind,
    mediaType: manifest.mediaType ?? doc?.mediaType,
    artifactType: doc?.artifactType,
    annotations: doc?.annotations ?? {},
    platforms: children.map((c) => ({ ...c, stored: stored.has(c.digest) })),
    config: doc?.config && { ...doc.config, stored: stored.has(doc.config.digest) },
    image: doc?.config && kind === 'image' ? await loadConfig(ctx, doc.config.digest) : undefined,
    layers: layers.map((l) => ({ ...l, stored: stored.has(l.digest) })),
    layerBytes: layers.reduce((n, l) => n + l.size, doc?.config?.size ?? 0),
    subject: doc?.subject,
    referrers: [...referrers].map(([artifactType, items]) => ({ artifactType, items })),
    pull: pullCommands(at, imageRoute(ctx, repo, `@${digest}`)),
    mayDelete: viewer.mayDelete(repo),
  };
}
