/**
 * What several replicas behind a round-robin load balancer must do, whatever the storage: run by
 * replicas-fs.test.ts (a shared directory) and replicas-s3.test.ts (Swift's S3 API).
 */
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Cluster } from '../helpers/cluster.js';
import { ALL_ACCEPT, makeImage, makeIndex, makeReferrer, OCI_MANIFEST, pushImageHttp, pushManifestHttp, pushBlobHttp, sha256, writeOciLayout } from '../helpers/image.js';
import { skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.js';

/** skopeo push and pull through the load balancer: a 20-layer image and a two-platform index. */
export async function skopeoThroughBalancer(t: Test, c: Cluster): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'stowage-cluster-skopeo-'));
  const image = makeImage({ seed: 701, layers: 20, layerSize: 100_000 });
  const index = makeIndex([
    makeImage({ seed: 702, layers: 2, platform: { architecture: 'amd64', os: 'linux' } }),
    makeImage({ seed: 703, layers: 2, platform: { architecture: 'arm64', os: 'linux' } }),
  ]);
  await writeOciLayout(join(work, 'src'), { single: image, multi: index });
  const before = c.lb.accessLog().length;
  await skopeoCopy(`oci:${join(work, 'src')}:single`, `docker://${c.host}/team/app:1.0`);
  await skopeoCopy(`oci:${join(work, 'src')}:multi`, `docker://${c.host}/team/multi:latest`);
  const served = new Set(c.lb.accessLog().slice(before).flatMap((e) => e.upstreams));
  t.equal(served.size, c.replicas.length, `the pushes' requests were spread over all ${c.replicas.length} replicas`);
  for (const r of c.replicas) {
    const host = `127.0.0.1:${r.port}`;
    t.ok((await skopeoInspectRaw(`docker://${host}/team/app:1.0`)).equals(image.manifest.bytes), `${host}: the 20-layer manifest, byte for byte`);
    t.ok((await skopeoInspectRaw(`docker://${host}/team/multi:latest`)).equals(index.bytes), `${host}: the index, byte for byte`);
  }
  await skopeoCopy(`docker://${c.host}/team/app:1.0`, `oci:${join(work, 'out')}:single`);
  await skopeoCopy(`docker://${c.host}/team/multi:latest`, `oci:${join(work, 'out')}:multi`, ['--all']);
  const pulled = new Set((await readdir(join(work, 'out', 'blobs', 'sha256'))).map((h) => `sha256:${h}`));
  const expected = [image, ...index.images].flatMap((i) => [i.config.digest, i.manifest.digest, ...i.layers.map((l) => l.digest)]);
  t.same(expected.filter((d) => !pulled.has(d)), [], 'every blob and manifest pulled back through the balancer');
}

/** A chunked upload whose POST, PATCHes and PUT each reach another replica. */
export async function chunkedUploadAcrossReplicas(t: Test, c: Cluster): Promise<void> {
  const bytes = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = i % 251;
  const digest = sha256(bytes);
  const before = c.lb.accessLog().length;
  const start = await fetch(`${c.url}/v2/team/chunked/blobs/uploads/`, { method: 'POST' });
  t.equal(start.status, 202);
  let location = new URL(start.headers.get('location')!, c.url).toString();
  const chunk = 1024 * 1024;
  for (let off = 0; off < bytes.length; off += chunk) {
    const part = bytes.subarray(off, Math.min(bytes.length, off + chunk));
    const res = await fetch(location, {
      method: 'PATCH', body: part,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${off + part.length - 1}` },
    });
    t.equal(res.status, 202, `PATCH ${off}`);
    location = new URL(res.headers.get('location')!, c.url).toString();
  }
  const put = await fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT' });
  t.equal(put.status, 201, 'the PUT completes the upload');
  const entries = c.lb.accessLog().slice(before).map((e) => e.upstreams[e.upstreams.length - 1]);
  t.ok(entries.every((u, i) => i === 0 || u !== entries[i - 1]), `consecutive requests went to different replicas: ${entries.join(' ')}`);
  for (const r of c.replicas) {
    const res = await fetch(`${r.url}/v2/team/chunked/blobs/${digest}`);
    t.equal(sha256(Buffer.from(await res.arrayBuffer())), digest, `${r.port}: the blob, verified`);
  }
}

/** Push a tag through one request, read it through the next (another replica): never the old digest. */
export async function readAfterWrite(t: Test, c: Cluster, rounds = 40): Promise<void> {
  const base = makeImage({ seed: 710, layers: 1, layerSize: 1000 });
  await pushImageHttp(c.url, 'team/raw', 'base', base);
  let stale = 0;
  for (let i = 0; i < rounds; i++) {
    const config = { bytes: Buffer.from(JSON.stringify({ round: i })), digest: '' };
    config.digest = sha256(config.bytes);
    await pushBlobHttp(c.url, 'team/raw', config);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
      layers: base.layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.bytes.length })),
    }));
    await pushManifestHttp(c.url, 'team/raw', 'latest', manifest, OCI_MANIFEST);
    // The next requests go round the replicas: every one must answer the new digest at once.
    for (let k = 0; k < c.replicas.length; k++) {
      const res = await fetch(`${c.url}/v2/team/raw/manifests/latest`, { method: 'HEAD', headers: { accept: ALL_ACCEPT } });
      if (res.headers.get('docker-content-digest') !== sha256(manifest)) stale++;
    }
  }
  t.equal(stale, 0, `${rounds} pushes, each read on every replica right after: no stale tag`);
}

/** _catalog, tags lists, referrers and deletes agree on every replica. */
export async function listingsAndDeletes(t: Test, c: Cluster): Promise<void> {
  const image = makeImage({ seed: 720, layers: 1, layerSize: 2000 });
  await pushImageHttp(c.url, 'team/listed', 'v1', image);
  await pushImageHttp(c.url, 'team/listed', 'v2', image);
  const ref = makeReferrer(image.manifest, 721);
  for (const b of [ref.config, ...ref.layers]) await pushBlobHttp(c.url, 'team/listed', b);
  await pushManifestHttp(c.url, 'team/listed', ref.manifest.digest, ref.manifest.bytes, ref.manifest.mediaType);
  const views = await Promise.all(c.replicas.map(async (r) => ({
    catalog: await (await fetch(`${r.url}/v2/_catalog`)).json(),
    tags: await (await fetch(`${r.url}/v2/team/listed/tags/list`)).json(),
    referrers: await (await fetch(`${r.url}/v2/team/listed/referrers/${image.manifest.digest}`)).json(),
  })));
  for (const v of views.slice(1)) t.same(v, views[0], 'a replica lists what the first lists');
  t.match(views[0], { tags: { tags: ['v1', 'v2'] }, referrers: { manifests: [{ digest: ref.manifest.digest }] } });
  const del = await fetch(`${c.url}/v2/team/listed/manifests/v1`, { method: 'DELETE' });
  t.equal(del.status, 202, 'a tag deleted through the balancer');
  for (const r of c.replicas) {
    const res = await fetch(`${r.url}/v2/team/listed/manifests/v1`, { headers: { accept: ALL_ACCEPT } });
    t.equal(res.status, 404, `${r.port}: the deleted tag is gone at once`);
    t.same(((await (await fetch(`${r.url}/v2/team/listed/tags/list`)).json()) as { tags: string[] }).tags, ['v2'], `${r.port}: lists v2 only`);
  }
  const delManifest = await fetch(`${c.url}/v2/team/listed/manifests/${image.manifest.digest}`, { method: 'DELETE' });
  t.equal(delManifest.status, 202, 'the manifest deleted by digest');
  for (const r of c.replicas) {
    const res = await fetch(`${r.url}/v2/team/listed/manifests/v2`, { headers: { accept: ALL_ACCEPT } });
    t.equal(res.status, 404, `${r.port}: its other tag went with it`);
  }
}

/**
 * htpasswd with an anonymous rule (stowage issues its own tokens): a token from one replica is
 * good on every replica, and a change to the htpasswd file (the same file for all, as a mounted
 * secret) is picked up by every replica.
 */
export async function tokensAndHtpasswd(t: Test, c: Cluster, users: (entries: Record<string, string>) => Promise<void>): Promise<void> {
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  const image = makeImage({ seed: 730, layers: 1, layerSize: 1000 });
  await pushImageHttp(c.replicas[0]!.url, 'team/private', 'v1', image, { authorization: basic('alice', 'alice-pw') });
  const tokenRes = await fetch(`${c.replicas[0]!.url}/auth/token?service=stowage&scope=repository:team/private:pull`, { headers: { authorization: basic('alice', 'alice-pw') } });
  const { token } = (await tokenRes.json()) as { token: string };
  t.ok(token, 'a token from the first replica');
  for (const r of c.replicas) {
    const res = await fetch(`${r.url}/v2/team/private/manifests/v1`, { headers: { accept: ALL_ACCEPT, authorization: `Bearer ${token}` } });
    t.equal(res.status, 200, `${r.port}: the token is good here`);
  }
  await users({ alice: 'alice-pw', carol: 'carol-pw' });
  const deadline = Date.now() + 15_000;
  const carolOn = async (r: Cluster['replicas'][number]) => (await fetch(`${r.url}/v2/team/private/manifests/v1`, { headers: { accept: ALL_ACCEPT, authorization: basic('carol', 'carol-pw') } })).status;
  let statuses: number[] = [];
  while (Date.now() < deadline) {
    statuses = await Promise.all(c.replicas.map(carolOn));
    if (statuses.every((s) => s === 200)) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  t.same(statuses, c.replicas.map(() => 200), 'a user added to the htpasswd file is let in by every replica');
}
