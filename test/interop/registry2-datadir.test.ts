/**
 * The on-disk layout is registry:2's, both ways, for real: a data directory written by Debian's
 * docker-registry (distribution 2.8.2) is served by stowage, and one written by stowage is served
 * by docker-registry. skopeo pushes and pulls; every digest must be identical.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { makeImage, makeIndex, writeOciLayout, type Image, type Index } from '../helpers/image.js';
import { startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools('skopeo', 'docker-registry');

const IMAGES: Record<string, Image | Index> = {
  single: makeImage({ seed: 11, layers: 3, layerSize: 200_000 }),
  multi: makeIndex([
    makeImage({ seed: 12, layers: 2, platform: { architecture: 'amd64', os: 'linux' } }),
    makeImage({ seed: 13, layers: 2, platform: { architecture: 'arm64', os: 'linux' } }),
  ]),
};
const TARGETS: Array<[string, keyof typeof IMAGES]> = [['plain:v1', 'single'], ['team/app:v2', 'single'], ['team/multi:latest', 'multi']];
const topDigest = (x: Image | Index) => ('images' in x ? x.digest : x.manifest.digest);
const topBytes = (x: Image | Index) => ('images' in x ? x.bytes : x.manifest.bytes);

async function pushAll(t: Test, writer: Proc, layout: string) {
  for (const [target, tag] of TARGETS) await skopeoCopy(`oci:${layout}:${tag}`, `docker://127.0.0.1:${writer.port}/${target}`);
  t.pass('pushed every image');
}

async function pullAll(t: Test, reader: Proc, work: string, label: string) {
  for (const [target, tag] of TARGETS) {
    const ref = `docker://127.0.0.1:${reader.port}/${target}`;
    t.ok((await skopeoInspectRaw(ref)).equals(topBytes(IMAGES[tag]!)), `${label}: ${target} manifest identical`);
    const out = join(work, `out-${label}-${target.replace(/[/:]/g, '_')}`);
    await skopeoCopy(ref, `oci:${out}:x`);
    const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    t.equal(idx.manifests[0]?.digest, topDigest(IMAGES[tag]!), `${label}: ${target} pulled with the same digest`);
  }
}


t.test('registry:2 writes, stowage serves', { skip }, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'r2-to-stowage-'));
  const layout = join(work, 'layout');
  await writeOciLayout(layout, IMAGES);
  const r2 = await startRegistry2({ rootDir: join(work, 'data') });
  await pushAll(t, r2, layout);
  await r2.stop();
  const s = await startStowage({ rootDir: join(work, 'data') });
  t.teardown(() => s.stop());
  t.ok(s.logs().some((l) => l.msg === 'reindex complete'), 'a fresh index was built from the registry:2 directory');
  await pullAll(t, s, work, 'stowage');
  t.same(await (await fetch(`${s.url}/v2/_catalog`)).json(), { repositories: ['plain', 'team/app', 'team/multi'] }, 'catalog');
  t.same(await (await fetch(`${s.url}/v2/team/app/tags/list`)).json(), { name: 'team/app', tags: ['v2'] }, 'tags');
});

t.test('stowage writes, registry:2 serves', { skip }, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'stowage-to-r2-'));
  const layout = join(work, 'layout');
  await writeOciLayout(layout, IMAGES);
  const s = await startStowage({ rootDir: join(work, 'data') });
  await pushAll(t, s, layout);
  await s.stop();
  const r2 = await startRegistry2({ rootDir: join(work, 'data') });
  t.teardown(() => r2.stop());
  await pullAll(t, r2, work, 'registry2');
  t.same(await (await fetch(`${r2.url}/v2/team/app/tags/list`)).json(), { name: 'team/app', tags: ['v2'] }, 'registry:2 lists the tag');
});
