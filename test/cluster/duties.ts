/**
 * What a cluster does beyond serving: one upstream fetch per blob across replicas, eviction and GC
 * run by one replica while the others pull and push, notifications across a replica's death, the
 * database stopped under load. Run by replicas-fs.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Test } from 'tap';
import type { Cluster } from '../helpers/cluster.js';
import { ALL_ACCEPT, makeImage, pushImageHttp, sha256, type Image } from '../helpers/image.js';
import type { PostgresCluster } from '../helpers/postgres.js';
import { childEnv, countRegistry2Requests, type Proc } from '../helpers/procs.js';
import { freePort, sleep } from '../helpers/tools.js';

export const get = (url: string, accept = ALL_ACCEPT) => fetch(url, { headers: { accept } });

/** Downloads a blob and hashes it; otherwise what went wrong ("status 404", "failed: ..."). */
export async function fetchDigest(url: string): Promise<string> {
  try {
    const res = await fetch(url);
    if (res.status !== 200) { await res.arrayBuffer(); return `status ${res.status}`; }
    return sha256(Buffer.from(await res.arrayBuffer()));
  } catch (e) {
    return `failed: ${(e as Error).message} ${String((e as { cause?: unknown }).cause ?? '')}`;
  }
}

/** 8 clients spread over the replicas ask for the same cold blob at once: one upstream GET. */
export async function singleFlightAcrossReplicas(t: Test, c: Cluster, upstream: Proc): Promise<void> {
  const image = makeImage({ seed: 801, layers: 1, layerSize: 24 * 1024 * 1024 });
  await pushImageHttp(upstream.url, 'library/big', '1', image);
  const layer = image.layers[0]!;
  // Every replica learns the manifest (the blob becomes eligible there), then 8 clients at once.
  for (const r of c.replicas) t.equal((await get(`${r.url}/v2/library/big/manifests/1`)).status, 200);
  const before = countRegistry2Requests(upstream, 'GET', `/blobs/${layer.digest}`);
  const got = await Promise.all(Array.from({ length: 8 }, (_, i) => fetchDigest(`${c.replicas[i % c.replicas.length]!.url}/v2/library/big/blobs/${layer.digest}`)));
  t.same(got, Array(8).fill(layer.digest), 'every client got the verified blob');
  if (got.some((d) => d !== layer.digest)) {
    t.comment(`replicas by client: ${got.map((_d, i) => c.replicas[i % c.replicas.length]!.port).join(' ')}`);
    for (const r of c.replicas) t.comment(`${r.port}:\n${r.logs().filter((l) => l.msg !== 'request' || l.reference === layer.digest).map((l) => JSON.stringify(l).slice(0, 300)).join('\n')}`);
  }
  t.equal(countRegistry2Requests(upstream, 'GET', `/blobs/${layer.digest}`) - before, 1, 'the upstream saw one GET for it, across three replicas');
  const peerServed = c.replicas.map((r) => r.logs().filter((l) => l.cache === 'peer').length);
  t.ok(peerServed.some((n) => n > 0), `the filling replica streamed to the others (${peerServed.join(', ')} peer requests)`);
}

/**
 * Eviction (a budget far below what is pulled) and GC run while pulls and pushes go through the
 * other replicas: one replica does the work, every pull that completes has the right bytes, every
 * acknowledged push stays complete.
 */
export async function dutiesRacingTraffic(t: Test, c: Cluster, upstream: Proc): Promise<void> {
  const cached: Image[] = [];
  for (let i = 0; i < 8; i++) {
    const img = makeImage({ seed: 820 + i, layers: 2, layerSize: 400_000 });
    cached.push(img);
    await pushImageHttp(upstream.url, `library/churn${i}`, '1', img);
  }
  const pushedImages: Array<{ repo: string; image: Image }> = [];
  let brokenPulls = 0;
  let pulls = 0;
  const deadline = Date.now() + 20_000;
  const puller = async (k: number) => {
    for (let round = 0; Date.now() < deadline; round++) {
      const img = cached[(k + round) % cached.length]!;
      const idx = (k + round) % cached.length;
      const r = c.replicas[(k + round) % c.replicas.length]!;
      const m = await get(`${r.url}/v2/library/churn${idx}/manifests/1`);
      if (m.status !== 200) { await m.arrayBuffer(); continue; }
      await m.arrayBuffer();
      pulls++;
      for (const l of [img.config, ...img.layers]) {
        const d = await fetchDigest(`${c.replicas[(k + round + 1) % c.replicas.length]!.url}/v2/library/churn${idx}/blobs/${l.digest}`);
        if (d?.startsWith('sha256:') && d !== l.digest) brokenPulls++;
      }
    }
  };
  const pusher = async () => {
    for (let i = 0; Date.now() < deadline; i++) {
      const image = makeImage({ seed: 900 + i, layers: 2, layerSize: 50_000 });
      await pushImageHttp(c.url, `team/pushed${i}`, 'v1', image);
      pushedImages.push({ repo: `team/pushed${i}`, image });
    }
  };
  await Promise.all([puller(0), puller(1), puller(2), pusher()]);
  t.equal(brokenPulls, 0, `${pulls} pulls racing eviction and GC: no wrong bytes`);
  for (const { repo, image } of pushedImages) {
    for (const b of [image.config, ...image.layers]) {
      if ((await fetchDigest(`${c.url}/v2/${repo}/blobs/${b.digest}`)) !== b.digest) t.fail(`${repo}: pushed blob ${b.digest} lost`);
    }
    if ((await get(`${c.url}/v2/${repo}/manifests/v1`)).status !== 200) t.fail(`${repo}: pushed manifest lost`);
  }
  t.pass(`${pushedImages.length} images pushed meanwhile, all complete`);
  const evictions = c.replicas.map((r) => r.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('cache eviction')).length);
  t.equal(evictions.filter((n) => n > 0).length, 1, `one replica ran the evictions (passes per replica: ${evictions.join(', ')})`);
  const leaders = c.replicas.filter((r) => r.logs().some((l) => typeof l.msg === 'string' && l.msg.startsWith('this replica runs eviction')));
  t.equal(leaders.length, 1, 'one replica held the maintenance lease');
}

const RECEIVER = resolve(import.meta.dirname, '../helpers/webhook-receiver.mjs');

function startReceiver(port: number, file: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [RECEIVER, String(port), file], { env: childEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolveStart, reject) => {
    p.stdout!.once('data', () => resolveStart(p));
    p.once('exit', (code) => reject(new Error(`receiver exited ${code}`)));
  });
}

interface Ev { id: string; action: string; target: { repository: string; tag?: string; digest?: string } }
const eventsIn = (file: string): Ev[] => (existsSync(file)
  ? readFileSync(file, 'utf8').split('\n').filter(Boolean).flatMap((l) => (JSON.parse(l) as { body: { events: Ev[] } }).body.events)
  : []);

/**
 * Pushes through the balancer while the receiver is down; the replica delivering is killed; the
 * receiver comes up: every event arrives (at least once), and manifest pushes in push order.
 */
export async function notificationsAcrossDeath(t: Test, c: Cluster, hookPort: number, work: string): Promise<void> {
  const file = join(work, 'hooks.jsonl');
  const tags: string[] = [];
  for (let i = 0; i < 12; i++) {
    await pushImageHttp(c.url, 'team/events', `t${i}`, makeImage({ seed: 950 + i, layers: 1, layerSize: 500 }));
    tags.push(`t${i}`);
  }
  // The replica holding the endpoint's lease is killed (it would be delivering once the receiver is up).
  const holderLine = await (async () => {
    for (let i = 0; i < 50; i++) {
      const idx = c.replicas.findIndex((r) => r.logs().some((l) => l.endpoint === 'audit' && l.msg === 'notification endpoint down: backing off'));
      if (idx >= 0) return idx;
      await sleep(200);
    }
    return 0;
  })();
  await c.replicas[holderLine]!.kill9();
  for (let i = 12; i < 16; i++) {
    await pushImageHttp(c.url, 'team/events', `t${i}`, makeImage({ seed: 950 + i, layers: 1, layerSize: 500 }));
    tags.push(`t${i}`);
  }
  const receiver = await startReceiver(hookPort, file);
  t.teardown(() => { receiver.kill('SIGTERM'); });
  const want = tags.map((tag) => `push team/events ${tag}`);
  const seen = () => eventsIn(file).filter((e) => e.target.tag !== undefined && e.target.repository === 'team/events').map((e) => `${e.action} ${e.target.repository} ${e.target.tag}`);
  for (let i = 0; i < 200 && want.some((w) => !seen().includes(w)); i++) await sleep(200);
  const arrived = seen();
  t.same(want.filter((w) => !arrived.includes(w)), [], 'every tagged push arrived, though the delivering replica was killed');
  const firsts = [...new Set(arrived)];
  t.same(firsts, want, 'manifest pushes arrive in push order');
  await c.restart(holderLine);
}

/** The database stopped under load: 503s (never 500s or wrong bytes), then service again without a restart. */
export async function databaseStoppedUnderLoad(t: Test, c: Cluster, pg: PostgresCluster): Promise<void> {
  const image = makeImage({ seed: 990, layers: 1, layerSize: 200_000 });
  await pushImageHttp(c.url, 'team/steady', 'v1', image);
  const statuses = new Map<number, number>();
  let wrong = 0;
  let stop = false;
  const load = async () => {
    while (!stop) {
      try {
        const m = await get(`${c.url}/v2/team/steady/manifests/v1`);
        const body = Buffer.from(await m.arrayBuffer());
        statuses.set(m.status, (statuses.get(m.status) ?? 0) + 1);
        if (m.status === 200 && !body.equals(image.manifest.bytes)) wrong++;
      } catch {
        statuses.set(0, (statuses.get(0) ?? 0) + 1);
      }
      await sleep(20);
    }
  };
  const loaders = [load(), load()];
  await sleep(1000);
  await pg.stop();
  let sawUnavailable = false;
  for (let i = 0; i < 50 && !sawUnavailable; i++) {
    await sleep(200);
    sawUnavailable = (statuses.get(503) ?? 0) > 0;
  }
  await sleep(1500);
  await pg.start();
  let back = false;
  for (let i = 0; i < 100 && !back; i++) {
    await sleep(200);
    back = (await Promise.all(c.replicas.map(async (r) => (await get(`${r.url}/v2/team/steady/manifests/v1`)).status))).every((s) => s === 200);
  }
  stop = true;
  await Promise.all(loaders);
  t.ok(sawUnavailable, `503 while the database was down (statuses ${JSON.stringify([...statuses])})`);
  t.equal(statuses.get(500) ?? 0, 0, 'never a 500');
  t.equal(wrong, 0, 'never wrong bytes');
  t.ok(back, 'every replica serves again, without a restart');
  const health = await Promise.all(c.replicas.map(async (r) => (await fetch(`${r.url}/v2/`)).status));
  t.same(health, c.replicas.map(() => 200), '/v2/ healthy on every replica');
  const after = makeImage({ seed: 991, layers: 1, layerSize: 1000 });
  await pushImageHttp(c.url, 'team/steady', 'v2', after);
  t.equal((await get(`${c.url}/v2/team/steady/manifests/v2`)).status, 200, 'pushes work again');
}

export { freePort };

/**
 * The replica filling a blob (from a slow upstream) is killed mid-blob: its clients and the
 * replicas streaming from it see cut connections (never a complete response of wrong bytes); a
 * retry completes within seconds through another replica, which took the fill over; the upstream
 * sees one more GET at most; every blob in storage hashes to its name.
 */
export async function fillerKilled(t: Test, c: Cluster, upstream: Proc, storedBlobs: () => Promise<string[]>): Promise<void> {
  const image = makeImage({ seed: 970, layers: 1, layerSize: 16 * 1024 * 1024 });
  await pushImageHttp(upstream.url, 'library/slow', '1', image);
  const layer = image.layers[0]!;
  for (const r of c.replicas) t.equal((await get(`${r.url}/v2/library/slow/manifests/1`)).status, 200);
  const before = countRegistry2Requests(upstream, 'GET', `/blobs/${layer.digest}`);
  const first = c.replicas.map((r) => fetchDigest(`${r.url}/v2/library/slow/blobs/${layer.digest}`));
  // The filler is the replica holding the fill lease; kill it once bytes are flowing.
  let filler = -1;
  for (let i = 0; i < 100 && filler < 0; i++) {
    await sleep(100);
    filler = c.replicas.findIndex((r) => r.logs().some((l) => l.cache === 'peer' && l.method === 'HEAD' && l.status === 200));
  }
  t.ok(filler >= 0, 'a replica is filling and the others stream from it');
  await sleep(800);
  await c.replicas[filler]!.kill9();
  const results = await Promise.all(first);
  t.same(results.filter((d) => d.startsWith('sha256:') && d !== layer.digest), [], `no complete response of wrong bytes (${results.map((d) => d.slice(0, 14)).join(', ')})`);
  t.ok(results.filter((d) => d !== layer.digest).length > 0, 'the clients of the killed fill were cut');
  const started = Date.now();
  const survivors = c.replicas.filter((_r, i) => i !== filler);
  const retries = await Promise.all(survivors.map(async (r) => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const d = await fetchDigest(`${r.url}/v2/library/slow/blobs/${layer.digest}`);
      if (d === layer.digest) return d;
      await sleep(500);
    }
    return 'gave up';
  }));
  t.same(retries, survivors.map(() => layer.digest), `a retry through each surviving replica completes (${Date.now() - started} ms)`);
  const gets = countRegistry2Requests(upstream, 'GET', `/blobs/${layer.digest}`) - before;
  t.ok(gets <= 2, `the upstream saw ${gets} GETs for the blob: the first fill and at most one takeover`);
  t.same(await storedBlobs(), [], 'every blob in storage hashes to its name');
  await c.restart(filler);
}
