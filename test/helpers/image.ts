/**
 * Deterministic synthetic OCI images: real gzip-compressed tar layers (content from a seeded
 * PRNG), a config with matching diff_ids, manifests, multi-arch indexes; written as OCI image
 * layouts for skopeo, or pushed over plain HTTP.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Blob { bytes: Buffer; digest: string }
export interface Image { config: Blob; layers: Blob[]; manifest: Blob & { mediaType: string }; platform: { architecture: string; os: string } }
export interface Index { bytes: Buffer; digest: string; mediaType: string; images: Image[] }

/** xorshift32: fast, seeded, good enough to make incompressible-looking bytes. */
export function prngBytes(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size + (4 - (size % 4)) % 4);
  let x = (seed | 0) || 0x9e3779b9;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out.writeInt32LE(x | 0, i);
  }
  return out.subarray(0, size);
}

/** A one-file POSIX tar archive. */
function tarOf(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512, 0);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 8, 'ascii');
  header.write('0000000\0', 108, 8, 'ascii');
  header.write('0000000\0', 116, 8, 'ascii');
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  header.write('00000000000\0', 136, 12, 'ascii');
  header.write('        ', 148, 8, 'ascii');
  header.write('0', 156, 1, 'ascii');
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512, 0);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024, 0)]);
}

const blob = (bytes: Buffer): Blob => ({ bytes, digest: sha256(bytes) });

export interface ImageSpec {
  seed: number; layers?: number; layerSize?: number; platform?: { architecture: string; os: string };
  /** Content size of each layer (instead of layers x layerSize), for images of realistic shape. */
  layerSizes?: number[];
  /** Unseeded random content, gzip-stored (not deflated): fast for benchmark-sized images. */
  randomContent?: boolean;
}

export function makeImage(spec: ImageSpec): Image {
  const platform = spec.platform ?? { architecture: 'amd64', os: 'linux' };
  const sizes = spec.layerSizes ?? Array<number>(spec.layers ?? 3).fill(spec.layerSize ?? 64 * 1024);
  const content = (size: number, i: number) => (spec.randomContent ? randomBytes(size) : prngBytes(spec.seed * 1000 + i + 1, size));
  const tars = sizes.map((size, i) => tarOf(`file-${spec.seed}-${i}`, content(size, i)));
  // level 1: fast; random content does not compress anyway
  const layers = tars.map((t) => blob(gzipSync(t, { level: spec.randomContent ? 0 : 1 })));
  const config = blob(Buffer.from(JSON.stringify({
    architecture: platform.architecture, os: platform.os, created: '2026-01-01T00:00:00Z',
    config: { Env: [`SEED=${spec.seed}`] },
    rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) },
  })));
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.bytes.length },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.bytes.length })),
  }));
  return { config, layers, manifest: { ...blob(manifestBytes), mediaType: OCI_MANIFEST }, platform };
}

/**
 * An image whose layers are the given blobs as they are (not tars): for tests that need some
 * manifest to reference a blob, since stowage fetches a blob from an upstream only then.
 */
export function imageReferencing(layers: Blob[], tag = 'refs'): Image {
  const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, tag })));
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.bytes.length },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.bytes.length })),
  }));
  return { config, layers, manifest: { ...blob(manifestBytes), mediaType: OCI_MANIFEST }, platform: { architecture: 'amd64', os: 'linux' } };
}

export function makeIndex(images: Image[]): Index {
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_INDEX,
    manifests: images.map((i) => ({ mediaType: OCI_MANIFEST, digest: i.manifest.digest, size: i.manifest.bytes.length, platform: i.platform })),
  }));
  return { bytes, digest: sha256(bytes), mediaType: OCI_INDEX, images };
}

/** Writes an OCI image layout holding `tags` (tag -> image or index). */
export async function writeOciLayout(dir: string, tags: Record<string, Image | Index>): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = (b: Blob) => writeFile(join(blobs, b.digest.slice(7)), b.bytes);
  const entries = [];
  for (const [tag, x] of Object.entries(tags)) {
    const images = 'images' in x ? x.images : [x];
    for (const img of images) {
      await put(img.config);
      for (const l of img.layers) await put(l);
      await put(img.manifest);
    }
    if ('images' in x) await put(x);
    const top = 'images' in x ? { mediaType: x.mediaType, digest: x.digest, size: x.bytes.length } : { mediaType: x.manifest.mediaType, digest: x.manifest.digest, size: x.manifest.bytes.length };
    entries.push({ ...top, annotations: { 'org.opencontainers.image.ref.name': tag } });
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: entries }));
}

async function ok(res: Response, what: string, status: number): Promise<void> {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

/** Monolithic push: POST ?digest= (OCI 1.1); registry:2 answers that with 202, so then POST + PUT. */
export async function pushBlobHttp(base: string, repo: string, b: Blob, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
    method: 'POST', body: b.bytes, headers: { 'content-type': 'application/octet-stream', ...headers },
  });
  if (res.status === 202) {
    await res.arrayBuffer();
    const location = new URL(res.headers.get('location')!, base);
    location.searchParams.set('digest', b.digest);
    await ok(await fetch(location, { method: 'PUT', body: b.bytes, headers: { 'content-type': 'application/octet-stream', ...headers } }), `push blob ${b.digest}`, 201);
    return;
  }
  await ok(res, `push blob ${b.digest}`, 201);
}

export async function pushManifestHttp(base: string, repo: string, ref: string, bytes: Buffer, mediaType: string, headers: Record<string, string> = {}): Promise<void> {
  await ok(await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: bytes, headers: { 'content-type': mediaType, ...headers } }),
    `push manifest ${repo}:${ref}`, 201);
}

/** Monolithic blob pushes and a manifest PUT: seeds any registry over plain HTTP (`headers`: e.g. Authorization). */
export async function pushImageHttp(base: string, repo: string, tag: string, x: Image | Index, headers: Record<string, string> = {}): Promise<void> {
  const images = 'images' in x ? x.images : [x];
  for (const img of images) {
    for (const l of img.layers) await pushBlobHttp(base, repo, l, headers);
    await pushBlobHttp(base, repo, img.config, headers);
    await pushManifestHttp(base, repo, 'images' in x ? img.manifest.digest : tag, img.manifest.bytes, img.manifest.mediaType, headers);
  }
  if ('images' in x) await pushManifestHttp(base, repo, tag, x.bytes, x.mediaType, headers);
}

export const ALL_ACCEPT = [OCI_INDEX, OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

/** A referrer (a "signature") of `subject`: an OCI manifest with an empty config, one blob and a subject. */
export function makeReferrer(subject: Blob & { mediaType: string }, seed: number): { config: Blob; layers: Blob[]; manifest: Blob & { mediaType: string } } {
  const config = blob(Buffer.from('{}'));
  const sig = blob(Buffer.from(`signature ${seed} of ${subject.digest}`));
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.signature',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config.digest, size: config.bytes.length },
    layers: [{ mediaType: 'application/vnd.example.signature.v1', digest: sig.digest, size: sig.bytes.length }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
  }));
  return { config, layers: [sig], manifest: { ...blob(bytes), mediaType: OCI_MANIFEST } };
}

/** An OCI image made of the given layers (its config from the seed): for images that share layers. */
export function imageFromLayers(seed: number, layers: Blob[]): Image {
  const base = makeImage({ seed, layers: 1, layerSize: 1000 });
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: base.config.digest, size: base.config.bytes.length },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.bytes.length })),
  }));
  return { ...base, layers, manifest: { ...blob(bytes), mediaType: OCI_MANIFEST } };
}
