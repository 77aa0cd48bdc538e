/**
 * Integration scenarios run on each object-store backend (object-store-{s3,azure,swift}.test.ts):
 * stowage from dist/cli.js on a real store, real clients (skopeo), the store looked at directly.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { isPathNotFound, type StorageDriver } from '../../src/storage/driver.js';
import { ALL_ACCEPT, makeImage, makeIndex, pushImageHttp, sha256, writeOciLayout } from '../helpers/image.js';
import type { ObjectStore } from '../helpers/object-stores.js';
import { childEnv, startStowage, type Proc } from '../helpers/procs.js';
import { skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.js';
import { sleep } from '../helpers/tools.js';

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

/** Every blobs/sha256/xx/<hex>/data in the store must hash to <hex>; returns the bad ones. */
export async function corruptBlobs(d: StorageDriver): Promise<string[]> {
  const bad: string[] = [];
  const base = '/docker/registry/v2/blobs/sha256';
  let prefixes: string[] = [];
  try { prefixes = await d.list(base); } catch (e) { if (isPathNotFound(e)) return bad; throw e; }
  for (const p of prefixes) {
    for (const dir of await d.list(p)) {
      const hex = dir.slice(dir.lastIndexOf('/') + 1);
      const files = await d.list(dir);
      for (const f of files) if (!f.endsWith('/data')) bad.push(`${hex}: stray ${f}`);
      if (!files.includes(`${dir}/data`)) continue;
      const h = (await import('node:crypto')).createHash('sha256');
      for await (const c of await d.reader(`${dir}/data`)) h.update(c as Buffer);
      if (h.digest('hex') !== hex) bad.push(hex);
    }
  }
  return bad;
}

export async function skopeoRoundTrip(t: Test, s: Proc): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'stowage-os-skopeo-'));
  const image = makeImage({ seed: 501, layers: 20, layerSize: 200_000 });
  const index = makeIndex([
    makeImage({ seed: 502, layers: 2, platform: { architecture: 'amd64', os: 'linux' } }),
    makeImage({ seed: 503, layers: 2, platform: { architecture: 'arm64', os: 'linux' } }),
  ]);
  const src = join(work, 'src');
  await writeOciLayout(src, { single: image, multi: index });
  const host = `127.0.0.1:${s.port}`;
  await skopeoCopy(`oci:${src}:single`, `docker://${host}/team/app:1.0`);
  await skopeoCopy(`oci:${src}:multi`, `docker://${host}/team/multi:latest`);
  t.ok((await skopeoInspectRaw(`docker://${host}/team/app:1.0`)).equals(image.manifest.bytes), '20-layer image manifest byte for byte');
  t.ok((await skopeoInspectRaw(`docker://${host}/team/multi:latest`)).equals(index.bytes), 'two-platform index byte for byte');
  const out = join(work, 'out');
  await skopeoCopy(`docker://${host}/team/app:1.0`, `oci:${out}:single`);
  await skopeoCopy(`docker://${host}/team/multi:latest`, `oci:${out}:multi`);
  const expected = new Set([image, ...index.images].flatMap((i) => [i.config.digest, i.manifest.digest, ...i.layers.map((l) => l.digest)]));
  expected.add(index.digest);
  const files = new Set(await readdir(join(out, 'blobs', 'sha256')));
  let intact = 0;
  for (const d of expected) {
    if (files.has(d.slice(7)) && sha256(await readFile(join(out, 'blobs', 'sha256', d.slice(7)))) === d) intact++;
  }
  t.equal(intact, expected.size, `all ${expected.size} blobs came back out intact`);
  await skopeoCopy(`docker://${host}/team/app:1.0`, `docker://${host}/other/copy:1.0`);
  t.ok((await skopeoInspectRaw(`docker://${host}/other/copy:1.0`)).equals(image.manifest.bytes), 'copied within stowage (cross-repository mount)');
  t.same(await (await fetch(`${s.url}/v2/team/app/tags/list`)).json(), { name: 'team/app', tags: ['1.0'] });
  t.same(await (await fetch(`${s.url}/v2/_catalog`)).json(), { repositories: ['other/copy', 'team/app', 'team/multi'] });
}

/** Blob GETs with storage.redirect on: a 307 to the store, which skopeo follows. */
export async function redirects(t: Test, s: Proc, storeUrl: string): Promise<void> {
  const image = makeImage({ seed: 601, layers: 2, layerSize: 300_000 });
  await pushImageHttp(s.url, 'redir/app', 'v1', image);
  const layer = image.layers[0]!;
  const r = await fetch(`${s.url}/v2/redir/app/blobs/${layer.digest}`, { redirect: 'manual' });
  await r.arrayBuffer();
  t.equal(r.status, 307, 'blob GET answered with a redirect');
  const location = r.headers.get('location') ?? '';
  t.ok(location.startsWith(storeUrl), `to the store (${location.slice(0, 60)}...)`);
  const followed = await fetch(location);
  t.equal(sha256(Buffer.from(await followed.arrayBuffer())), layer.digest, 'the store serves the right bytes');
  const head = await fetch(`${s.url}/v2/redir/app/blobs/${layer.digest}`, { method: 'HEAD', redirect: 'manual' });
  t.equal(head.status, 200, 'HEAD is answered by stowage');
  const work = await mkdtemp(join(tmpdir(), 'stowage-os-redirect-'));
  await skopeoCopy(`docker://127.0.0.1:${s.port}/redir/app:v1`, `oci:${join(work, 'out')}:v1`);
  const got = await readFile(join(work, 'out', 'blobs', 'sha256', layer.digest.slice(7)));
  t.equal(sha256(got), layer.digest, 'skopeo followed the redirect and got the layer');
  const redirected = s.logs().filter((l) => l.redirected === true && l.status === 307).length;
  t.ok(redirected >= 3, `stowage logged ${redirected} redirected blob GETs`);
}

/** With the store down: 503 UNAVAILABLE with the OCI error, never a 500; back up, all is well. */
export async function storeDown(t: Test, s: Proc, store: ObjectStore, secret: string): Promise<void> {
  const image = makeImage({ seed: 701, layers: 1, layerSize: 100_000 });
  await pushImageHttp(s.url, 'down/app', 'v1', image);
  await store.down();
  try {
    const m = await fetch(`${s.url}/v2/down/app/manifests/v1`, { headers: { accept: ALL_ACCEPT } });
    const body = await m.json() as { errors: Array<{ code: string }> };
    t.equal(m.status, 503, 'manifest GET: 503');
    t.equal(body.errors[0]?.code, 'UNAVAILABLE', 'with the OCI error UNAVAILABLE');
    const post = await fetch(`${s.url}/v2/down/app/blobs/uploads/`, { method: 'POST' });
    await post.arrayBuffer();
    t.equal(post.status, 503, 'starting an upload: 503');
  } finally {
    await store.up();
  }
  const again = await fetch(`${s.url}/v2/down/app/manifests/v1`, { headers: { accept: ALL_ACCEPT } });
  t.ok(Buffer.from(await again.arrayBuffer()).equals(image.manifest.bytes), 'store back: manifest served');
  t.notOk(s.output().includes(secret), 'the store\'s secret never appears in the log');
  t.notOk(s.output().includes('"status":500'), 'no 500 in the log');
}

/** `stowage reindex` on the store rebuilds the index: every repository and tag is found. */
export async function reindexCli(t: Test, configFile: string): Promise<void> {
  const { stdout } = await run(process.execPath, [CLI, 'reindex', '--config', configFile], { env: childEnv(), timeout: 120_000 });
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>;
  t.ok(Object.values(result).some((v) => typeof v === 'number' && v > 0), `reindex found content: ${JSON.stringify(result)}`);
}

/** Writes a stowage config for `storage` beside the caller's files and returns its path. */
export async function writeConfig(dir: string, storage: Record<string, unknown>): Promise<string> {
  const file = join(dir, 'reindex.yml');
  await writeFile(file, stringify({ version: '0.1', log: { level: 'warn' }, storage, http: { addr: '127.0.0.1:0' } }));
  return file;
}

/** Abandoned upload sessions are purged from the store: data, parts and segments alike. */
export async function uploadPurging(t: Test, store: ObjectStore): Promise<void> {
  const bucket = await store.bucket();
  const s = await startStowage({
    storage: bucket.section,
    config: { storage: { maintenance: { uploadpurging: { enabled: true, age: '3s', interval: '2s', dryrun: false } } } },
  });
  t.teardown(() => s.stop());
  const post = await fetch(`${s.url}/v2/purge/app/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  const loc = new URL(post.headers.get('location')!, s.url);
  const patch = await fetch(loc, { method: 'PATCH', body: Buffer.alloc(7 * 1024 * 1024, 7), headers: { 'content-type': 'application/octet-stream' } });
  await patch.arrayBuffer();
  t.equal(patch.status, 202, 'a 7 MiB chunk accepted');
  const uploads = '/docker/registry/v2/repositories/purge/app/_uploads';
  t.equal((await bucket.driver.list(uploads)).length, 1, 'one session in the store');
  const deadline = Date.now() + 30_000;
  let left: string[] = ['?'];
  while (Date.now() < deadline) {
    left = await bucket.driver.list(uploads).catch(() => []);
    if (left.length === 0) break;
    await sleep(500);
  }
  t.same(left, [], 'the session was purged from the store');
  const status = await fetch(loc);
  await status.arrayBuffer();
  t.equal(status.status, 404, 'and is unknown to clients');
  t.ok(s.logs().some((l) => l.msg === 'purged abandoned upload sessions'), 'purging logged');
}

/** Pull-through with the cache on the object store: an upstream stowage, skopeo through the cache. */
export async function pullThrough(t: Test, store: ObjectStore): Promise<void> {
  const upstream = await startStowage();
  t.teardown(() => upstream.stop());
  // Layers big enough that clients read while the fill is still running (joiners included).
  const image = makeImage({ seed: 801, layers: 2, layerSize: 40 * 1024 * 1024 });
  await pushImageHttp(upstream.url, 'library/base', '1', image);
  const bucket = await store.bucket();
  const s = await startStowage({ storage: bucket.section, config: { upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io' } });
  t.teardown(() => s.stop());
  const work = await mkdtemp(join(tmpdir(), 'stowage-os-pull-'));
  await Promise.all(['cold', 'joiner'].map((d) => skopeoCopy(`docker://127.0.0.1:${s.port}/docker.io/library/base:1`, `oci:${join(work, d)}:1`)));
  for (const d of ['cold', 'joiner']) {
    for (const l of image.layers) {
      t.equal(sha256(await readFile(join(work, d, 'blobs', 'sha256', l.digest.slice(7)))), l.digest, `${d} pull: layer ${l.digest.slice(7, 19)} intact`);
    }
  }
  t.same(await corruptBlobs(bucket.driver), [], 'every cached blob in the store hashes to its name');
  await upstream.stop();
  await skopeoCopy(`docker://127.0.0.1:${s.port}/docker.io/library/base:1`, `oci:${join(work, 'warm')}:1`);
  t.pass('warm pull served from the object store with the upstream stopped');
}

/** The whole set on one backend; one store per test file, a bucket per stowage. */
export function objectStoreSuite(t: Test, store: () => ObjectStore): void {
  t.test('skopeo round trip, store down, reindex', async (t) => {
    const bucket = await store().bucket();
    const dir = await mkdtemp(join(tmpdir(), 'stowage-os-'));
    const s = await startStowage({ storage: bucket.section });
    t.teardown(() => s.stop());
    await t.test('skopeo: 20-layer image and two-platform index in and out', (t) => skopeoRoundTrip(t, s));
    await t.test('store down: 503 UNAVAILABLE, then back', (t) => storeDown(t, s, store(), bucket.secret));
    t.same(await corruptBlobs(bucket.driver), [], 'every blob in the store hashes to its name');
    t.notOk(s.output().includes(bucket.secret), 'credentials never logged');
    await s.stop();
    const file = await writeConfig(dir, bucket.section);
    await t.test('stowage reindex', (t) => reindexCli(t, file));
  });

  t.test('redirects to the store', async (t) => {
    const bucket = await store().bucket();
    const s = await startStowage({ storage: { ...bucket.section, redirect: { disable: false } } });
    t.teardown(() => s.stop());
    const section = Object.values(bucket.section)[0] as Record<string, string>;
    const storeUrl = new URL(section.regionendpoint ?? section.serviceurl ?? section.authurl!).origin;
    await redirects(t, s, storeUrl);
  });

  t.test('upload purging clears abandoned sessions from the store', (t) => uploadPurging(t, store()));

  // The fill serves clients from its in-memory window; on an object store (readsWhileWriting
  // false) a client behind the window waits for the commit instead of reading the staging object.
  t.test('pull-through cache on the store', (t) => pullThrough(t, store()));
}
