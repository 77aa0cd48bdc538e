/**
 * `stowage prefetch` says `fetched` only once everything is stored and linked: checked on disk
 * the moment the command has exited. Two 20-layer images in two repositories share their layers
 * (as images on one base do) and are prefetched in parallel, so one repository's pull joins fills
 * the other one started; before the fix the joining repository got only some of its 21 links
 * (the rest appeared at the next read).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { imageFromLayers, makeImage, pushImageHttp, type Image } from '../helpers/image.js';
import { runCli, startRegistry2, writeStowageConfig } from '../helpers/procs.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools('docker-registry');
const LAYERS = makeImage({ seed: 71, layers: 20, layerSize: 120_000 }).layers;
const IMAGES: Record<string, Image> = { 'team/web': imageFromLayers(72, LAYERS), 'team/worker': imageFromLayers(73, LAYERS) };

t.test('every link of every prefetched image is on disk when the command exits', { skip, timeout: 300_000 }, async (t) => {
  const upstream = await startRegistry2();
  t.teardown(() => upstream.stop());
  for (const [repo, image] of Object.entries(IMAGES)) await pushImageHttp(upstream.url, repo, 'v1', image);
  const { file, rootDir } = await writeStowageConfig({ config: { upstreams: [{ name: 'up.test', url: upstream.url }] } });

  const run = await runCli(['prefetch', '--config', file, '-j', '2', '--json', ...Object.keys(IMAGES).map((r) => `up.test/${r}:v1`)]);
  t.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as { images: Array<{ name: string; status: string; blobs: number }> };
  t.same(report.images.map((i) => i.status), ['fetched', 'fetched'], 'both images fetched');

  const v2 = join(rootDir, 'docker/registry/v2');
  const linkOf = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);
  for (const [repo, image] of Object.entries(IMAGES)) {
    const dir = join(v2, 'repositories/up.test', repo);
    const blobs = [image.config, ...image.layers];
    const linked = blobs.filter((b) => linkOf(join(dir, '_layers/sha256', b.digest.slice(7), 'link')) === b.digest);
    t.equal(linked.length, blobs.length, `${repo}: all ${blobs.length} blob links`);
    t.ok(blobs.every((b) => existsSync(join(v2, 'blobs/sha256', b.digest.slice(7, 9), b.digest.slice(7), 'data'))), `${repo}: every blob's data`);
    t.equal(linkOf(join(dir, '_manifests/revisions/sha256', image.manifest.digest.slice(7), 'link')), image.manifest.digest, `${repo}: the manifest's revision link`);
    t.equal(linkOf(join(dir, '_manifests/tags/v1/current/link')), image.manifest.digest, `${repo}: the tag`);
  }
});
