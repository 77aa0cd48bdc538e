// Benchmark (issue 8): the cold path with raw HTTP, side by side in one run: direct from the
// upstream, through stowage, through registry:2 in proxy mode. A pull is the manifest, then every
// blob in sequence, with curl -o /dev/null (no client cost to hide the server's). Reports wall
// time, CPU-seconds of the cache process, peak RSS, upstream bytes; and warm manifest GETs (wrk).
// Usage: npm run build && node bench/cold.mjs [--quick]
// `--memory [--baseline DIR]`: only stowage's memory through the concurrent phase (idle RSS, then
// 8 cold pulls, 8 warm, the manifest flood: peak RSS after each, with times and req/s so that a
// memory saving that costs throughput shows), for this build and another checkout's side by side.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  cpuSeconds, freePort, makeImage, need, peakRssMiB, pushImage, registry2Config, sha256, start, stop, stowageConfig, settledCpuSeconds, table, waitHttp, wrk,
} from './lib.mjs';
import { startCache as startCacheIn, STOWAGE_NODE_ARGS } from './lib.mjs';

need(['docker-registry', 'curl', 'wrk']);
const run = promisify(execFile);
const MiB = 1024 * 1024;
const quick = process.argv.includes('--quick');
const memoryOnly = process.argv.includes('--memory');
const baseline = process.argv.includes('--baseline') ? process.argv[process.argv.indexOf('--baseline') + 1] : undefined;
const work = mkdtempSync(join(tmpdir(), 'stowage-cold-bench-'));

// The images: 768 MiB in 6 blobs (5 layers + config), 64 MiB in 3 blobs, one 512 MiB layer.
const IMAGES = {
  big: Array(5).fill(768 * MiB / 5),
  small: [32 * MiB, 32 * MiB],
  single: [512 * MiB],
};
const upPort = await freePort();
writeFileSync(join(work, 'up.yml'), registry2Config(join(work, 'up'), upPort).replace('accesslog:\n    disabled: true', 'accesslog:\n    disabled: false'));
const up = start('upstream', 'docker-registry', ['serve', join(work, 'up.yml')]);
await waitHttp(`http://127.0.0.1:${upPort}/v2/`);
/** name -> { manifestDigest, blobs: [digest, size][] , bytes } */
const meta = {};
for (const [name, sizes] of Object.entries(IMAGES)) {
  if (memoryOnly && name !== 'big') continue;
  const image = makeImage(sizes.map(Math.round));
  await pushImage(`http://127.0.0.1:${upPort}`, `bench/${name}`, 'v1', image);
  meta[name] = {
    manifestDigest: sha256(image.manifest),
    blobs: [[sha256(image.config), image.config.length], ...image.layers.map((l) => [sha256(l), l.length])],
    bytes: image.layers.reduce((n, l) => n + l.length, image.config.length),
  };
}

const upstreamBlobBytes = () => up.output().split('\n')
  .map((l) => /"GET \/v2\/[^ ]+\/blobs\/[^ ]+ HTTP\/1\.[01]" 200 (\d+)/.exec(l))
  .reduce((n, m) => n + (m ? Number(m[1]) : 0), 0);

/**
 * The kernel's CPU-seconds for writing `mib` MiB into a new file with dd, kept like a cache's
 * blobs: the page-cache cost every cache pays, measured in the same moment. On these VMs it moves
 * between ~0.2 and ~2.5 CPU-s per GiB with whether the free memory was handed back to the host.
 */
let ddCount = 0;
function pageCacheCost(mib) {
  const file = join(work, `dd-${ddCount++}`);
  const dd = spawnSync('bash', ['-c', `TIMEFORMAT=%S; time dd if=/dev/zero of=${file} bs=1M count=${Math.round(mib)} status=none`], { encoding: 'utf8' });
  return Number(dd.stderr.trim().split('\n').pop());
}

const startCache = (kind) => startCacheIn(kind, work, upPort);

const ACCEPT = 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';
/** curl arguments for a raw pull: the manifest by tag, then every blob in sequence, bodies discarded. */
function pullArgs(port, name) {
  const base = `http://127.0.0.1:${port}/v2/bench/${name}`;
  const args = ['-s', '--fail', '-H', ACCEPT, '-o', '/dev/null', `${base}/manifests/v1`];
  for (const [digest] of meta[name].blobs) args.push('-o', '/dev/null', `${base}/blobs/${digest}`);
  return args;
}
function timed(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
const pull = (port, name) => timed(() => execFileSync('curl', pullArgs(port, name)));
async function pullConcurrent(port, name, n) {
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: n }, () => run('curl', pullArgs(port, name))));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
const blobGet = (port, name) => {
  const [digest] = meta[name].blobs[1];
  return timed(() => execFileSync('curl', ['-s', '--fail', '-o', '/dev/null', `http://127.0.0.1:${port}/v2/bench/${name}/blobs/${digest}`]));
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const runs = quick ? 1 : 3;

if (memoryOnly) {
  const rssNow = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  const rows = [['build', 'idle RSS', 'peak after 8 cold', '+ 8 warm', '+ manifest flood', '8 cold (s)', '8 warm (s)', 'by tag (req/s)', 'by digest (req/s)', 'CPU-s, whole phase']];
  for (const [label, cli] of [['this build', process.env.STOWAGE_CLI ?? 'dist/cli.js'], ...(baseline ? [[`baseline ${baseline}`, join(baseline, 'dist/cli.js')]] : [])]) {
    const c = await startCacheIn('stowage', work, upPort, { cli, nodeArgs: [...STOWAGE_NODE_ARGS, ...(process.env.NODE_ARGS ?? '').split(' ').filter(Boolean)] });
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssNow(c.proc.pid);
    const cpu0 = cpuSeconds(c.proc.pid);
    const cold = await pullConcurrent(c.port, 'big', 8);
    await settledCpuSeconds(c.proc.pid);
    const afterCold = peakRssMiB(c.proc.pid);
    const warm = await pullConcurrent(c.port, 'big', 8);
    const afterWarm = peakRssMiB(c.proc.pid);
    const base = `http://127.0.0.1:${c.port}/v2/bench/big/manifests`;
    const tag = wrk(`${base}/v1`, { seconds: 5, headers: [ACCEPT] });
    const digest = wrk(`${base}/${meta.big.manifestDigest}`, { seconds: 5, headers: [ACCEPT] });
    rows.push([label, idle.toFixed(0), afterCold.toFixed(0), afterWarm.toFixed(0), peakRssMiB(c.proc.pid).toFixed(0), cold.toFixed(2), warm.toFixed(2),
      tag.rps.toFixed(0), digest.rps.toFixed(0), (cpuSeconds(c.proc.pid) - cpu0).toFixed(1)]);
    await stop(c);
  }
  await stop(up);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`## stowage memory through the concurrent phase (${new Date().toISOString()}), MiB
machine: ${cpus().length} cores, node ${process.version}, load average at the end ${load}; node flags: ${[...STOWAGE_NODE_ARGS, process.env.NODE_ARGS ?? ''].join(' ').trim()}; 768 MiB image (6 blobs); wrk -t2 -c16 -d5s
${table(rows)}`);
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

const R = { direct: {}, stowage: {}, 'registry:2': {} };
for (const name of ['big', 'small']) {
  R.direct[name] = median(Array.from({ length: runs }, () => pull(upPort, name)));
}
R.direct.single = median(Array.from({ length: runs }, () => blobGet(upPort, 'single')));

for (const kind of ['stowage', 'registry:2']) {
  const r = R[kind];
  for (const name of ['big', 'small']) {
    const cold = []; const warm = []; const cpu = []; const floor = [];
    for (let i = 0; i < runs; i++) {
      const c = await startCache(kind === 'stowage' ? 'stowage' : 'r2');
      if (kind === 'stowage' && name === 'big' && i === 0) r.idleRss = peakRssMiB(c.proc.pid);
      const cpu0 = cpuSeconds(c.proc.pid);
      cold.push(pull(c.port, name));
      cpu.push(await settledCpuSeconds(c.proc.pid) - cpu0); // registry:2's background fills included
      floor.push(pageCacheCost(meta[name].bytes / MiB));
      warm.push(pull(c.port, name));
      r.peakRss = Math.max(r.peakRss ?? 0, peakRssMiB(c.proc.pid));
      await stop(c);
    }
    r[`${name}Cold`] = median(cold);
    r[`${name}Warm`] = median(warm);
    r[`${name}Cpu`] = median(cpu);
    r[`${name}Floor`] = median(floor);
  }
  // one cold 512 MiB blob: throughput and CPU per GiB
  {
    const times = []; const cpu = []; const floor = [];
    for (let i = 0; i < runs; i++) {
      const c = await startCache(kind === 'stowage' ? 'stowage' : 'r2');
      execFileSync('curl', ['-s', '--fail', '-H', ACCEPT, '-o', '/dev/null', `http://127.0.0.1:${c.port}/v2/bench/single/manifests/v1`]);
      const cpu0 = cpuSeconds(c.proc.pid);
      times.push(blobGet(c.port, 'single'));
      cpu.push(await settledCpuSeconds(c.proc.pid) - cpu0);
      floor.push(pageCacheCost(512));
      r.peakRss = Math.max(r.peakRss ?? 0, peakRssMiB(c.proc.pid));
      await stop(c);
    }
    r.single = median(times);
    r.singleCpuPerGiB = median(cpu) / 0.5;
    r.singleFloorPerGiB = median(floor) / 0.5;
  }
  // 8 concurrent cold pulls of one image, then the same 8 warm
  {
    const c = await startCache(kind === 'stowage' ? 'stowage' : 'r2');
    const before = upstreamBlobBytes();
    const cpu0 = cpuSeconds(c.proc.pid);
    r.concurrentCold = await pullConcurrent(c.port, 'big', 8);
    r.concurrentCpu = await settledCpuSeconds(c.proc.pid) - cpu0;
    r.concurrentFloor = pageCacheCost(meta.big.bytes / MiB);
    r.peakAfterConcurrentCold = peakRssMiB(c.proc.pid);
    r.upstreamBytes = upstreamBlobBytes() - before;
    r.concurrentWarm = await pullConcurrent(c.port, 'big', 8);
    r.peakAfterConcurrentWarm = peakRssMiB(c.proc.pid);
    r.peakRss = Math.max(r.peakRss ?? 0, peakRssMiB(c.proc.pid));
    // warm manifest GETs by tag and by digest
    const base = `http://127.0.0.1:${c.port}/v2/bench/big/manifests`;
    const seconds = quick ? 5 : 10;
    r.byTag = wrk(`${base}/v1`, { seconds, headers: [ACCEPT] });
    r.byDigest = wrk(`${base}/${meta.big.manifestDigest}`, { seconds, headers: [ACCEPT] });
    r.peakWrk = peakRssMiB(c.proc.pid);
    r.peakRss = Math.max(r.peakRss ?? 0, peakRssMiB(c.proc.pid));
    await stop(c);
  }
}
await stop(up);

const S = R.stowage, G = R['registry:2'], D = R.direct;
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const mibps = (bytes, s) => f(bytes / MiB / s, 0);
const rows = [
  ['metric', 'direct', 'stowage', 'registry:2 proxy', 'stowage / direct', 'registry:2 / direct'],
  ['cold pull 768 MiB, 6 blobs (s)', f(D.big), f(S.bigCold), f(G.bigCold), f(S.bigCold / D.big), f(G.bigCold / D.big)],
  ['warm pull 768 MiB (s)', '-', f(S.bigWarm), f(G.bigWarm), f(S.bigWarm / D.big), f(G.bigWarm / D.big)],
  ['  CPU-s of the cache, cold 768 MiB', '-', f(S.bigCpu), f(G.bigCpu), '-', '-'],
  ['  page-cache floor: dd of 768 MiB (CPU-s)', '-', f(S.bigFloor), f(G.bigFloor), '-', '-'],
  ['cold pull 64 MiB, 3 blobs (s)', f(D.small, 3), f(S.smallCold, 3), f(G.smallCold, 3), f(S.smallCold / D.small), f(G.smallCold / D.small)],
  ['warm pull 64 MiB (s)', '-', f(S.smallWarm, 3), f(G.smallWarm, 3), f(S.smallWarm / D.small), f(G.smallWarm / D.small)],
  ['one cold 512 MiB blob (MiB/s)', mibps(512 * MiB, D.single), mibps(512 * MiB, S.single), mibps(512 * MiB, G.single), f(D.single / S.single), f(D.single / G.single)],
  ['  CPU-s per cold GiB', '-', f(S.singleCpuPerGiB), f(G.singleCpuPerGiB), '-', '-'],
  ['  page-cache floor: dd, CPU-s per GiB', '-', f(S.singleFloorPerGiB), f(G.singleFloorPerGiB), '-', '-'],
  ['  CPU-s per cold GiB above the floor', '-', f(S.singleCpuPerGiB - S.singleFloorPerGiB), f(G.singleCpuPerGiB - G.singleFloorPerGiB), '-', '-'],
  ['8 concurrent cold pulls 768 MiB (s)', '-', f(S.concurrentCold), f(G.concurrentCold), '-', '-'],
  ['8 concurrent warm pulls (s)', '-', f(S.concurrentWarm), f(G.concurrentWarm), '-', '-'],
  ['  cold / warm', '-', f(S.concurrentCold / S.concurrentWarm), f(G.concurrentCold / G.concurrentWarm), '-', '-'],
  ['  upstream blob bytes / image', '-', f(S.upstreamBytes / meta.big.bytes), f(G.upstreamBytes / meta.big.bytes), '-', '-'],
  ['  CPU-s of the cache, 8 cold pulls', '-', f(S.concurrentCpu), f(G.concurrentCpu), '-', '-'],
  ['  page-cache floor: dd of 768 MiB (CPU-s)', '-', f(S.concurrentFloor), f(G.concurrentFloor), '-', '-'],
  ['warm manifest GET by tag (req/s, p99)', '-', `${f(S.byTag.rps, 0)}, ${S.byTag.p99}`, `${f(G.byTag.rps, 0)}, ${G.byTag.p99}`, '-', '-'],
  ['warm manifest GET by digest (req/s, p99)', '-', `${f(S.byDigest.rps, 0)}, ${S.byDigest.p99}`, `${f(G.byDigest.rps, 0)}, ${G.byDigest.p99}`, '-', '-'],
  ['peak RSS over all of the above (MiB)', '-', f(S.peakRss, 0), f(G.peakRss, 0), '-', '-'],
  ['  peak RSS after 8 cold / + 8 warm / + wrk', '-', `${f(S.peakAfterConcurrentCold, 0)} / ${f(S.peakAfterConcurrentWarm, 0)} / ${f(S.peakWrk, 0)}`,
    `${f(G.peakAfterConcurrentCold, 0)} / ${f(G.peakAfterConcurrentWarm, 0)} / ${f(G.peakWrk, 0)}`, '-', '-'],
  ['idle RSS, node dist/cli.js serve (MiB)', '-', f(S.idleRss, 0), '-', '-', '-'],
];
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const report = `## cold path, raw HTTP (curl -o /dev/null): direct vs stowage vs registry:2 proxy (${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}, load average at the end ${load}; upstream: registry:2 on loopback; median of ${runs} run(s); wrk -t2 -c16
${table(rows)}
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `cold-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
