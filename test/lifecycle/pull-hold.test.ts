/**
 * Eviction never cuts a pull in progress, whatever min_age (issue: with min_age 0s a client that
 * had the manifest and asked for its layers more than the evictor's drain later found neither the
 * blobs nor the manifest). A real stowage in front of registry:2 with min_age 0s and a budget far
 * smaller than what is being pulled; slow clients pull manifest, config and layers over plain HTTP
 * with pauses longer than the evictor's interval plus its drain: every request of every pull is
 * answered with verified bytes, and once the pulls stop, the budget is reached.
 */
import t from 'tap';
import { ALL_ACCEPT, makeImage, pushImageHttp, sha256, type Image } from '../helpers/image.js';
import { startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('docker-registry');
const KiB = 1024;
/** Between two requests of one pull: longer than interval (300ms) + the evictor's drain (1s). */
const PAUSE_MS = 2500;
const MAX_SIZE = 2 * 1024 * KiB;

async function metric(p: Proc, name: string): Promise<number> {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

t.test('min_age 0s: slow pulls racing the evictor all complete; the budget is reached after', { skip, timeout: 180_000 }, async (t) => {
  const upstream = await startRegistry2();
  t.teardown(() => upstream.stop());
  const images: Image[] = Array.from({ length: 4 }, (_, i) => makeImage({ seed: 300 + i, layers: 3, layerSize: 400 * KiB }));
  const fillers: Image[] = Array.from({ length: 3 }, (_, i) => makeImage({ seed: 320 + i, layers: 1, layerSize: 900 * KiB }));
  for (const [i, img] of images.entries()) await pushImageHttp(upstream.url, `library/slow${i}`, '1', img);
  for (const [i, img] of fillers.entries()) await pushImageHttp(upstream.url, `library/filler${i}`, '1', img);
  const server = await startStowage({
    config: {
      upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io',
      cache: { max_size: '2MiB', low_watermark: '50%', min_age: '0s', interval: '300ms', pull_hold: '4s' },
      // The clients here fetch each layer themselves, late: prefetch would fetch them at once.
      prefetch: { enabled: false },
    },
  });
  t.teardown(() => server.stop());

  const get = async (path: string) => {
    const r = await fetch(`${server.url}/v2/${path}`, { headers: { accept: ALL_ACCEPT } });
    return { status: r.status, digest: sha256(Buffer.from(await r.arrayBuffer())) };
  };
  const failures: string[] = [];
  /** A pull as a slow client makes it: manifest, then config and layers one by one, pausing before each. */
  const slowPull = async (repo: string, img: Image, pauseMs: number) => {
    const m = await get(`${repo}/manifests/1`);
    if (m.status !== 200 || m.digest !== img.manifest.digest) failures.push(`${repo} manifest: ${m.status}`);
    for (const b of [img.config, ...img.layers]) {
      await sleep(pauseMs);
      const r = await get(`${repo}/blobs/${b.digest}`);
      if (r.status !== 200 || r.digest !== b.digest) failures.push(`${repo} blob ${b.digest.slice(7, 19)}: ${r.status}${r.status === 200 ? ' wrong bytes' : ''}`);
    }
  };

  // Over budget from the start: the evictor is at work all along.
  for (const [i, img] of fillers.entries()) await slowPull(`library/filler${i}`, img, 0);
  // A slow machine may already be evicting a filler whose hold ran out: its bytes leave
  // stowage_cache_bytes at once but reach the evicted counter when the pass ends (after its drain).
  const filled = async () => await metric(server, 'stowage_cache_bytes') + await metric(server, 'stowage_cache_evicted_bytes_total');
  let seen = await filled();
  for (const until = Date.now() + 5_000; seen <= MAX_SIZE && Date.now() < until; seen = await filled()) await sleep(200);
  t.ok(seen > MAX_SIZE, `the fillers took the cache over budget (${seen} bytes cached or evicted)`);

  const started = Date.now();
  await Promise.all(images.map((img, i) => sleep(i * 600).then(() => slowPull(`library/slow${i}`, img, PAUSE_MS))));
  t.same(failures, [], `four slow pulls (${Math.round((Date.now() - started) / 1000)} s, ${4 * 5} requests) all answered with verified bytes`);
  const evicted = await metric(server, 'stowage_cache_evictions_total');
  t.ok(evicted >= 1, `the evictor ran meanwhile (${evicted} images evicted)`);

  // Pulls stopped: once the hold has passed, eviction reaches the budget.
  const deadline = Date.now() + 30_000;
  let usage = await metric(server, 'stowage_cache_bytes');
  while (usage > MAX_SIZE && Date.now() < deadline) {
    await sleep(300);
    usage = await metric(server, 'stowage_cache_bytes');
  }
  t.ok(usage <= MAX_SIZE, `usage ${usage} back under max_size ${MAX_SIZE} once the pulls stopped`);
});
