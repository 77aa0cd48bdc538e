/**
 * The cache budget in a real stowage in front of a real registry:2: more images are pulled than
 * fit; usage ends under max_size; recently used, pinned and pushed images still pull with the
 * upstream stopped, as does a layer a kept image shares with evicted ones; then pulls racing
 * evictions, many at once: none of them breaks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { imageFromLayers, makeImage, pushImageHttp, ALL_ACCEPT, type Image } from '../helpers/image.js';
import { runCli, startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('docker-registry', 'skopeo');
const KiB = 1024;
const json = (s: string) => JSON.parse(s) as any;

async function metric(p: Proc, name: string): Promise<number> {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(200);
  }
}

t.test('pull more than fits: the budget holds, the right images stay', { skip, timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-budget-'));
  const upstream = await startRegistry2();
  const procs: Proc[] = [upstream];
  t.teardown(async () => { for (const p of procs) await p.stop(); rmSync(work, { recursive: true, force: true }); });
  const base = makeImage({ seed: 80, layers: 1, layerSize: 200 * KiB }).layers[0]!;
  const images: Image[] = Array.from({ length: 7 }, (_, i) => imageFromLayers(81 + i, [base, makeImage({ seed: 90 + i, layers: 1, layerSize: 512 * KiB }).layers[0]!]));
  const pinned = imageFromLayers(99, [makeImage({ seed: 98, layers: 1, layerSize: 512 * KiB }).layers[0]!]);
  for (const [i, img] of images.entries()) await pushImageHttp(upstream.url, `library/img${i}`, '1', img);
  await pushImageHttp(upstream.url, 'library/pinned', '1', pinned);

  const budget = 2560 * KiB;
  const server = await startStowage({
    config: {
      upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io',
      cache: { max_size: '2560KiB', low_watermark: '80%', min_age: '0s', pull_hold: '500ms', interval: '300ms', pin: ['docker.io/library/pinned:*'] },
    },
  });
  procs.push(server);
  const host = `127.0.0.1:${server.port}`;
  const pull = (repo: string) => skopeoCopy(`docker://127.0.0.1:${server.port}/${repo}:1`, `dir:${join(work, `${repo.replace(/\W/g, '_')}-${Date.now()}`)}`);
  // A pushed image sharing the base layer with every cached one.
  const app = imageFromLayers(97, [base, makeImage({ seed: 96, layers: 1, layerSize: 100 * KiB }).layers[0]!]);
  await pushImageHttp(server.url, 'team/app', '1', app);

  await pull('library/pinned');
  for (let i = 0; i < images.length; i++) {
    await pull(`library/img${i}`);
    await pull('library/img0'); // img0 stays the most recently used
    await sleep(400);
  }
  // The counter moves when a pass ends; usage drops during it.
  await until('usage under max_size, passes done', async () => (await metric(server, 'stowage_cache_bytes')) <= budget
    && (await metric(server, 'stowage_cache_evictions_total')) >= 3);
  t.pass('images were evicted');
  t.equal(await metric(server, 'stowage_cache_budget_bytes'), budget, 'the budget is on /metrics');
  t.ok(await metric(server, 'stowage_cache_evicted_bytes_total') > 0, 'bytes freed are counted');

  const status = await runCli(['status', '--config', server.configFile!, '--json']);
  t.equal(status.code, 0, status.stderr);
  const s = json(status.stdout);
  t.ok(s.cachedBytes <= budget, `status: ${s.cachedBytes} cached bytes`);
  t.match(s.largest.find((i: any) => i.repo === 'docker.io/library/pinned'), { pinned: true, tags: ['1'] });
  const text = await runCli(['status', '--config', server.configFile!]);
  t.match(text.stdout, /least recently used \(evicted first\)/);

  await upstream.stop();
  for (const repo of ['library/img0', `library/img${images.length - 1}`, 'library/pinned', 'team/app']) {
    await t.resolves(pull(repo), `${repo} still pulls with the upstream stopped`);
  }
  const evicted = await fetch(`${server.url}/v2/library/img1/manifests/1`, { headers: { accept: ALL_ACCEPT } });
  await evicted.arrayBuffer();
  t.not(evicted.status, 200, `an evicted image is gone (${evicted.status})`);
  const shared = await fetch(`${server.url}/v2/library/img0/blobs/${base.digest}`);
  t.equal(shared.status, 200, 'the shared base layer survived every eviction');
  await shared.arrayBuffer();

  // Restarted with a smaller budget: eviction runs at start-up, before any request.
  await server.stop();
  const smaller = await startStowage({
    rootDir: server.rootDir, port: server.port,
    config: {
      upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io',
      cache: { max_size: '1MiB', low_watermark: '80%', min_age: '0s', pull_hold: '500ms', interval: '1h', pin: ['docker.io/library/pinned:*'] },
    },
  });
  procs.push(smaller);
  // usage drops during the pass; its log line comes when the pass ends
  const startupPass = () => smaller.logs().some((l) => l.msg === 'cache eviction' && l.reason === 'start-up');
  await until('usage under the smaller budget', async () => (await metric(smaller, 'stowage_cache_bytes')) <= 1024 * KiB && startupPass());
  t.ok(smaller.logs().some((l) => l.msg === 'cache eviction' && l.reason === 'start-up'), 'evicted at start-up');
  await t.resolves(pull('library/pinned'), 'the pinned image is still there');
});

t.test('evictions racing concurrent pulls break none of them', { skip, timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-budget-race-'));
  const upstream = await startRegistry2();
  const procs: Proc[] = [upstream];
  t.teardown(async () => { for (const p of procs) await p.stop(); rmSync(work, { recursive: true, force: true }); });
  const base = makeImage({ seed: 120, layers: 1, layerSize: 100 * KiB }).layers[0]!;
  const COUNT = 10;
  for (let i = 0; i < COUNT; i++) {
    const img = imageFromLayers(121 + i, [base, ...makeImage({ seed: 140 + i, layers: 3, layerSize: 200 * KiB }).layers]);
    await pushImageHttp(upstream.url, `library/race${i}`, '1', img);
  }
  const server = await startStowage({
    config: {
      upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io',
      cache: { max_size: '2MiB', low_watermark: '60%', min_age: '400ms', pull_hold: '400ms', interval: '100ms' },
    },
  });
  procs.push(server);
  // Four pulls at a time, each starting at a random moment, cycling through more images than fit:
  // an image is often pulled again right while it is being evicted.
  // Rounds go on until at least 16 have run and 3 evictions completed (an eviction waits a second
  // between untagging and removing, and steps back when the image is pulled meanwhile, so how many
  // complete depends on the machine's speed), at most 60.
  let pulls = 0;
  let round = 0;
  for (; round < 60 && (round < 16 || (await metric(server, 'stowage_cache_evictions_total')) < 3); round++) {
    const batch = [0, 1, 2, 3].map((k) => (round * 3 + k) % COUNT);
    await Promise.all(batch.map(async (i) => {
      await sleep(Math.floor(Math.random() * 500));
      await skopeoCopy(`docker://127.0.0.1:${server.port}/library/race${i}:1`, `dir:${join(work, `r${round}-${i}`)}`);
      pulls++;
    }));
  }
  t.equal(pulls, round * 4, `every pull completed in ${round} rounds (skopeo verifies every digest)`);
  const evictions = await metric(server, 'stowage_cache_evictions_total');
  t.ok(evictions >= 3, `${evictions} images evicted while pulls ran`);
  await until('usage back under max_size', async () => (await metric(server, 'stowage_cache_bytes')) <= 2 * 1024 * KiB);
});
