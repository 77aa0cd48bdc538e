/**
 * skopeo (a real client) copies a generated multi-layer image and a multi-arch index into stowage
 * and back out; every digest is identical, manifests come back byte for byte.
 */
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeImage, makeIndex, sha256, writeOciLayout } from '../helpers/image.js';
import { startStowage } from '../helpers/procs.js';
import { skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools('skopeo');

t.test('skopeo in and out of stowage', { skip }, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'stowage-skopeo-'));
  const image = makeImage({ seed: 1, layers: 3, layerSize: 300_000 });
  const index = makeIndex([
    makeImage({ seed: 2, layers: 2, platform: { architecture: 'amd64', os: 'linux' } }),
    makeImage({ seed: 3, layers: 2, platform: { architecture: 'arm64', os: 'linux' } }),
  ]);
  const src = join(work, 'src');
  await writeOciLayout(src, { single: image, multi: index });
  const s = await startStowage();
  t.teardown(() => s.stop());
  const host = `127.0.0.1:${s.port}`;

  await skopeoCopy(`oci:${src}:single`, `docker://${host}/team/app:1.0`);
  await skopeoCopy(`oci:${src}:multi`, `docker://${host}/team/multi:latest`);

  const rawSingle = await skopeoInspectRaw(`docker://${host}/team/app:1.0`);
  t.ok(rawSingle.equals(image.manifest.bytes), 'image manifest served byte for byte');
  const rawMulti = await skopeoInspectRaw(`docker://${host}/team/multi:latest`);
  t.ok(rawMulti.equals(index.bytes), 'index served byte for byte (never trimmed to one platform)');

  const out = join(work, 'out');
  await skopeoCopy(`docker://${host}/team/app:1.0`, `oci:${out}:single`);
  await skopeoCopy(`docker://${host}/team/multi:latest`, `oci:${out}:multi`);
  const outIndex = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
  const byTag = Object.fromEntries(outIndex.manifests.map((m) => [m.annotations['org.opencontainers.image.ref.name'], m.digest]));
  t.same(byTag, { single: image.manifest.digest, multi: index.digest }, 'top-level digests identical after the round trip');
  const expected = new Set([image, ...index.images].flatMap((i) => [i.config.digest, i.manifest.digest, ...i.layers.map((l) => l.digest)]));
  expected.add(index.digest);
  const files = await readdir(join(out, 'blobs', 'sha256'));
  for (const d of expected) t.ok(files.includes(d.slice(7)), `blob ${d.slice(0, 19)} came back`);
  for (const f of files) {
    t.equal(sha256(await readFile(join(out, 'blobs', 'sha256', f))), `sha256:${f}`, `blob ${f.slice(0, 12)} intact`);
  }

  const dir = join(work, 'dir');
  await skopeoCopy(`docker://${host}/team/app:1.0`, `dir:${dir}`);
  t.ok((await readFile(join(dir, 'manifest.json'))).equals(image.manifest.bytes), 'dir: transport gets the same manifest');

  // registry to registry inside stowage: skopeo mounts blobs across repositories
  await skopeoCopy(`docker://${host}/team/app:1.0`, `docker://${host}/other/copy:1.0`);
  t.ok((await skopeoInspectRaw(`docker://${host}/other/copy:1.0`)).equals(image.manifest.bytes), 'copied within stowage');
  const mounts = s.logs().filter((l) => typeof l.url === 'string' && (l.url as string).includes('mount=') && l.status === 201);
  t.ok(mounts.length > 0, `cross-repository mounts were used (${mounts.length})`);

  const tags = await (await fetch(`${s.url}/v2/team/app/tags/list`)).json();
  t.same(tags, { name: 'team/app', tags: ['1.0'] });
  const catalog = await (await fetch(`${s.url}/v2/_catalog`)).json();
  t.same(catalog, { repositories: ['other/copy', 'team/app', 'team/multi'] });
});
