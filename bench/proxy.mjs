// Benchmark (issue 3): stowage vs registry:2 in proxy mode (proxy.remoteurl), same upstream
// (a registry:2 holding the images), one run, side by side.
// Usage: npm run build && node bench/proxy.mjs
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  freePort, makeImage, need, peakRssMiB, registry2Config, start, stop, stowageConfig, table, waitHttp, writeOciLayout,
} from './lib.mjs';
import { startCache as startCacheIn } from './lib.mjs';

need(['docker-registry', 'skopeo']);
const MiB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'stowage-proxy-bench-'));
const runs = 2;

// The upstream: registry:2 with a 4-layer 256 MiB image and a single 512 MiB layer image.
const upPort = await freePort();
writeFileSync(join(work, 'up.yml'), registry2Config(join(work, 'up'), upPort).replace('accesslog:\n    disabled: true', 'accesslog:\n    disabled: false'));
const up = start('upstream', 'docker-registry', ['serve', join(work, 'up.yml')]);
await waitHttp(`http://127.0.0.1:${upPort}/v2/`);
for (const [name, sizes] of [['app', [64 * MiB, 64 * MiB, 64 * MiB, 64 * MiB]], ['big', [512 * MiB]], ['mid', [64 * MiB]]]) {
  const layout = join(work, `layout-${name}`);
  writeOciLayout(layout, 'v1', makeImage(sizes));
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout}:v1`, `docker://127.0.0.1:${upPort}/bench/${name}:v1`]);
  rmSync(layout, { recursive: true, force: true });
}

/** Bytes the upstream has sent for blob GETs so far (its access log). */
const upstreamBlobBytes = () => up.output().split('\n')
  .map((l) => /"GET \/v2\/[^ ]+\/blobs\/[^ ]+ HTTP\/1\.[01]" 200 (\d+)/.exec(l))
  .reduce((n, m) => n + (m ? Number(m[1]) : 0), 0);

const startCache = (kind) => startCacheIn(kind, work, upPort);

function pull(port, image, dest) {
  const t0 = process.hrtime.bigint();
  execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${port}/bench/${image}:v1`, `dir:${dest}`]);
  rmSync(dest, { recursive: true, force: true });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
function pullAsync(port, image, dest) {
  return new Promise((resolve, reject) => {
    const p = spawn('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${port}/bench/${image}:v1`, `dir:${dest}`], { stdio: 'ignore' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`skopeo exited ${code}`))));
  });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const result = { direct: {}, stowage: {}, 'registry:2': {} };
// direct from the upstream
result.direct.cold = median(Array.from({ length: runs }, (_, i) => pull(upPort, 'app', join(work, `d${i}`))));

for (const kind of ['stowage', 'registry:2']) {
  const cold = [];
  const warm = [];
  for (let i = 0; i < runs; i++) {
    const c = await startCache(kind === 'stowage' ? 'stowage' : 'r2');
    cold.push(pull(c.port, 'app', join(work, `c${i}`)));
    await new Promise((r) => setTimeout(r, 500)); // registry:2 finishes its background fills
    warm.push(pull(c.port, 'app', join(work, `w${i}`)));
    await stop(c);
  }
  result[kind].cold = median(cold);
  result[kind].warm = median(warm);

  // 8 concurrent cold pulls of the same image: what does the upstream send?
  const c = await startCache(kind === 'stowage' ? 'stowage' : 'r2');
  const before = upstreamBlobBytes();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 8 }, (_, i) => pullAsync(c.port, 'app', join(work, `p${i}`))));
  result[kind].concurrent = Number(process.hrtime.bigint() - t0) / 1e9;
  await new Promise((r) => setTimeout(r, 3000));
  result[kind].upstreamBytes = upstreamBlobBytes() - before;
  await stop(c);
  for (let i = 0; i < 8; i++) rmSync(join(work, `p${i}`), { recursive: true, force: true });

  // peak RSS while pulling one layer through a cold cache: 64 MiB, then 512 MiB (flat = streaming)
  for (const [image, key] of [['mid', 'rss64'], ['big', 'rss']]) {
    const b = await startCache(kind === 'stowage' ? 'stowage' : 'r2');
    result[kind][`${key}Idle`] = peakRssMiB(b.proc.pid);
    pull(b.port, image, join(work, image));
    result[kind][key] = peakRssMiB(b.proc.pid);
    await stop(b);
  }
}
await stop(up);

const image = 256 * MiB;
const f = (x, d = 2) => x.toFixed(d);
const S = result.stowage, R = result['registry:2'], D = result.direct;
const rows = [
  ['metric', 'stowage', 'registry:2 proxy', 'direct upstream', 'stowage / registry:2', 'stowage / direct'],
  ['cold pull, 256 MiB image, skopeo (s)', f(S.cold), f(R.cold), f(D.cold), f(S.cold / R.cold), f(S.cold / D.cold)],
  ['warm pull (s)', f(S.warm), f(R.warm), '-', f(S.warm / R.warm), f(S.warm / D.cold)],
  ['8 concurrent cold pulls, wall time (s)', f(S.concurrent), f(R.concurrent), '-', f(S.concurrent / R.concurrent), '-'],
  ['  upstream blob bytes fetched (MiB)', f(S.upstreamBytes / MiB, 0), f(R.upstreamBytes / MiB, 0), '-', f(S.upstreamBytes / R.upstreamBytes), '-'],
  ['  = image size x', f(S.upstreamBytes / image), f(R.upstreamBytes / image), '-', '-', '-'],
  ['peak RSS pulling a 64 MiB layer (MiB)', `${f(S.rss64, 0)} (idle ${f(S.rss64Idle, 0)})`, `${f(R.rss64, 0)} (idle ${f(R.rss64Idle, 0)})`, '-', f(S.rss64 / R.rss64), '-'],
  ['peak RSS pulling a 512 MiB layer (MiB)', `${f(S.rss, 0)} (idle ${f(S.rssIdle, 0)})`, `${f(R.rss, 0)} (idle ${f(R.rssIdle, 0)})`, '-', f(S.rss / R.rss), '-'],
];
const report = `## pull-through: stowage vs registry:2 proxy mode (${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}; upstream: registry:2 on loopback; client: skopeo copy to dir:; median of ${runs} runs
${table(rows)}
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `proxy-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
