/**
 * Reading a stored manifest and its image config for display: platforms of an index's children,
 * a config's entrypoint, env, labels, created time and history. Everything read here is
 * untrusted (it came from whoever pushed it or from an upstream): only known fields of the
 * expected types are taken, as plain strings and numbers.
 */
import type { Digest } from '../../oci/digest.js';
import type { UiContext } from './context.js';

/** Configs bigger than this are not read for display. */
const MAX_CONFIG_BYTES = 1024 * 1024;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Json : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const stringMap = (v: unknown): Record<string, string> => {
  const o = obj(v);
  const out: Record<string, string> = {};
  if (o) for (const [k, x] of Object.entries(o)) if (typeof x === 'string') out[k] = x;
  return out;
};

export interface ChildManifest { digest: string; mediaType: string; size: number; platform: string | undefined; annotations: Record<string, string> }
export interface LayerView { digest: string; mediaType: string; size: number; stored: boolean; annotations: Record<string, string> }

export interface ManifestDoc {
  mediaType: string | undefined;
  artifactType: string | undefined;
  /** An index's children. */
  manifests: ChildManifest[];
  config: { digest: string; mediaType: string; size: number } | undefined;
  layers: Omit<LayerView, 'stored'>[];
  subject: string | undefined;
  annotations: Record<string, string>;
}

export interface ImageConfig {
  platform: string | undefined;
  created: string | undefined;
  author: string | undefined;
  entrypoint: string[];
  cmd: string[];
  workingDir: string | undefined;
  user: string | undefined;
  env: string[];
  labels: Record<string, string>;
  exposedPorts: string[];
  history: Array<{ created: string | undefined; createdBy: string | undefined; comment: string | undefined; emptyLayer: boolean }>;
}

export function platformString(p: unknown): string | undefined {
  const o = obj(p);
  const os = str(o?.os);
  const arch = str(o?.architecture);
  if (!os || !arch) return undefined;
  const variant = str(o?.variant);
  return `${os}/${arch}${variant ? `/${variant}` : ''}`;
}

export function readManifest(bytes: Buffer): ManifestDoc | undefined {
  let doc: Json | undefined;
  try { doc = obj(JSON.parse(bytes.toString('utf8'))); } catch { return undefined; }
  if (!doc) return undefined;
  const descriptor = (v: unknown) => {
    const d = obj(v);
    const digest = str(d?.digest);
    return d && digest ? { digest, mediaType: str(d.mediaType) ?? '', size: typeof d.size === 'number' ? d.size : 0, annotations: stringMap(d.annotations), platform: d.platform } : undefined;
  };
  const list = (v: unknown) => (Array.isArray(v) ? v.map(descriptor).filter((d) => d !== undefined) : []);
  const config = descriptor(doc.config);
  return {
    mediaType: str(doc.mediaType),
    artifactType: str(doc.artifactType),
    manifests: list(doc.manifests).map((d) => ({ digest: d.digest, mediaType: d.mediaType, size: d.size, platform: platformString(d.platform), annotations: d.annotations })),
    config: config && { digest: config.digest, mediaType: config.mediaType, size: config.size },
    layers: [...list(doc.layers), ...list(doc.blobs)].map((d) => ({ digest: d.digest, mediaType: d.mediaType, size: d.size, annotations: d.annotations })),
    subject: descriptor(doc.subject)?.digest,
    annotations: stringMap(doc.annotations),
  };
}

export function readConfig(bytes: Buffer): ImageConfig | undefined {
  let doc: Json | undefined;
  try { doc = obj(JSON.parse(bytes.toString('utf8'))); } catch { return undefined; }
  if (!doc) return undefined;
  const c = obj(doc.config) ?? {};
  return {
    platform: platformString(doc),
    created: str(doc.created),
    author: str(doc.author),
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
    workingDir: str(c.WorkingDir) || undefined,
    user: str(c.User) || undefined,
    env: strings(c.Env),
    labels: stringMap(c.Labels),
    exposedPorts: Object.keys(obj(c.ExposedPorts) ?? {}),
    history: (Array.isArray(doc.history) ? doc.history : []).map((h) => {
      const o = obj(h) ?? {};
      return { created: str(o.created), createdBy: str(o.created_by), comment: str(o.comment), emptyLayer: o.empty_layer === true };
    }),
  };
}

export async function loadManifest(ctx: UiContext, digest: string): Promise<{ bytes: Buffer; doc: ManifestDoc | undefined } | undefined> {
  const m = await ctx.registry.manifests.load(digest as Digest);
  return m && { bytes: m.bytes, doc: readManifest(m.bytes) };
}

/** The image config blob, when it is stored here and small enough to read. */
export async function loadConfig(ctx: UiContext, digest: string): Promise<ImageConfig | undefined> {
  const size = (await ctx.browse.blobSizes([digest])).get(digest);
  if (size === undefined || size > MAX_CONFIG_BYTES) return undefined;
  const bytes = await ctx.registry.blobs.getContent(digest as Digest);
  return bytes && readConfig(bytes);
}

/** Platforms of manifests: remembered in the index, else read once from the manifest (and config) and remembered. */
export async function platformsOf(ctx: UiContext, digests: readonly string[]): Promise<Map<string, string[]>> {
  const known = await ctx.browse.platforms(digests);
  for (const digest of digests) {
    if (known.has(digest)) continue;
    const m = await loadManifest(ctx, digest);
    if (!m?.doc) continue;
    let platforms: string[] | undefined;
    if (m.doc.manifests.length > 0) {
      // buildx attaches attestations as unknown/unknown children: not a platform.
      platforms = [...new Set(m.doc.manifests.map((c) => c.platform).filter((p): p is string => p !== undefined && !p.startsWith('unknown/')))];
    } else if (m.doc.config && !m.doc.subject) {
      const p = (await loadConfig(ctx, m.doc.config.digest))?.platform;
      platforms = p ? [p] : undefined;
    } else {
      platforms = [];
    }
    if (platforms === undefined) continue;
    known.set(digest, platforms);
    await ctx.browse.setPlatforms(digest, platforms);
  }
  return known;
}
