/**
 * A full disk (a small tmpfs as the storage root): a pull-through fill and a push that hit ENOSPC
 * fail cleanly (the push with 503 and the OCI error), leave nothing partial behind, make the cache
 * evict, and the next request works.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeImage, pushImageHttp, sha256 } from '../helpers/image.js';
import { startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (mounts a tmpfs)'
  : missingTools('docker-registry', 'skopeo', 'mount', 'umount');
const MiB = 1024 * 1024;

/** Every file under dir (recursively), relative. */
function files(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]);
}

t.test('ENOSPC on a small tmpfs: clean failures, eviction, then success', { skip, timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-full-'));
  const root = join(work, 'tmpfs');
  execFileSync('mkdir', ['-p', root]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', root]);
  const procs: Proc[] = [];
  t.teardown(async () => {
    for (const p of procs) await p.stop();
    try { execFileSync('umount', [root]); } catch { /* not mounted */ }
    rmSync(work, { recursive: true, force: true });
  });
  const upstream = await startRegistry2();
  procs.push(upstream);
  const images = ['a', 'b', 'c'].map((name, i) => ({ name, img: makeImage({ seed: 200 + i, layers: 1, layerSize: 2 * MiB }) }));
  for (const { name, img } of images) await pushImageHttp(upstream.url, `library/${name}`, '1', img);
  const server = await startStowage({
    rootDir: root,
    config: {
      metadata: { path: join(work, 'index.sqlite') }, // the index lives elsewhere: only storage fills up
      upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io',
      cache: { min_age: '1s', pull_hold: '1s' }, // no budget: only the full disk evicts
    },
  });
  procs.push(server);
  t.teardown(() => { if (process.env.DEBUG_FULL) writeFileSync(process.env.DEBUG_FULL, server.output()); });
  const host = `127.0.0.1:${server.port}`;
  const pull = (name: string) => skopeoCopy(`docker://${host}/library/${name}:1`, `dir:${join(work, `${name}-${Date.now()}`)}`);
  // Upload sessions and fill staging; `_staging` is where an eviction sets a blob aside for a moment.
  const partial = () => files(root).filter((f) => f.includes('/_uploads/') && !f.includes('/_staging/'));
  const evictions = async () => Number(/^stowage_cache_evictions_total (\S+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);

  await pull('a');
  await pull('b');
  await sleep(1200); // both idle for longer than min_age: evictable
  // A 3 MiB push does not fit: 503 with the OCI error, the session is gone, the cache makes room.
  const big = Buffer.alloc(3 * MiB, 1);
  const digest = sha256(big);
  const push = () => fetch(`${server.url}/v2/team/big/blobs/uploads/?digest=${digest}`, { method: 'POST', body: big, headers: { 'content-type': 'application/octet-stream' } });
  const full = await push();
  t.equal(full.status, 503, 'the push fails with 503');
  t.match(await full.json(), { errors: [{ code: 'UNAVAILABLE', message: /storage is full/ }] });
  t.same(partial(), [], 'no partial upload left behind');
  for (let i = 0; i < 50 && (await evictions()) < 1; i++) await sleep(100);
  t.ok((await evictions()) >= 1, 'the full disk made the cache evict');
  const retried = await push();
  await retried.arrayBuffer();
  t.equal(retried.status, 201, 'the next push works');

  // Now a pull-through fill runs out of space: the pull fails, nothing partial stays, eviction, the next pull works.
  await sleep(1200);
  const before = await evictions();
  // The fill hits ENOSPC. If the whole body had already arrived and verified in memory, the
  // client gets those verified bytes (skopeo checks every digest) and only the caching fails;
  // otherwise the transfer breaks. Either way nothing is cached or left behind.
  const outcome = await pull('c').then(() => 'served the verified bytes', (e: unknown) => `failed: ${String(e).slice(0, 80)}`);
  t.comment(`the pull that hit the full disk: ${outcome}`);
  // The fill ends beside the client's failure, and its line reaches stdout a little later.
  const fillFailed = () => server.logs().some((l) => l.level === 'warn' && /no space left/.test(String(l.err)) && /nothing cached/.test(String(l.msg)));
  for (let i = 0; i < 50 && !fillFailed(); i++) await sleep(100);
  t.ok(server.logs().some((l) => l.level === 'warn' && /no space left/.test(String(l.err)) && /nothing cached/.test(String(l.msg))),
    'the fill hit the full disk and cached nothing');
  for (let i = 0; i < 50 && partial().length > 0; i++) await sleep(100); // the fill cleans up as it ends
  t.same(partial(), [], 'the fill left nothing behind');
  for (let i = 0; i < 50 && (await evictions()) <= before; i++) await sleep(100);
  t.ok((await evictions()) > before, 'and made the cache evict');
  await t.resolves(pull('c'), 'the next pull works');
  t.ok(server.logs().some((l) => l.msg === 'storage is full: evicting cached images'), 'logged');
  for (let i = 0; i < 50 && files(root).some((f) => f.includes('/_uploads/')); i++) await sleep(100);
  t.same(files(root).filter((f) => f.includes('/_uploads/')), [], 'nothing set aside stays once evictions are done');
  const blob = await fetch(`${server.url}/v2/team/big/blobs/${digest}`);
  t.equal(sha256(Buffer.from(await blob.arrayBuffer())), digest, 'the pushed blob is intact');
});
