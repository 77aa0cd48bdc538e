// Profile of the cold blob path (issue 8): one cold 512 MiB blob GET through stowage per round,
// with stowage's CPU split by thread: the main thread (HTTP, hashing, JS), V8's worker threads
// (GC), and libuv's threadpool (the staging-file writes; threads with system time only). After
// each round, `dd` writes the same number of bytes to a new file on the same disk: the kernel's
// page-cache cost in that moment, which any cache pays and which on these VMs ranges 0.1-1.3
// CPU-s per 512 MiB depending on whether the free memory it lands in was handed back to the host.
//
// Usage: npm run build && node bench/prof-cold.mjs
//   ROUNDS=6             rounds (default 3), a fresh stowage each
//   CLIENTS=8            concurrent clients of the one cold blob (default 1)
//   VERIFY=1             each client pipes the blob through sha256sum and it must match
//   NODE_ARGS="--trace-gc"   flags for stowage's node; with --trace-gc, mark-compacts are counted
//                        (start-up runs two of them: a fill without a storm shows 2)
//   PERF=1 | STRACE=1    perf record (cpu-clock, call graphs) or strace -c of the GET, into $OUT_DIR
//   OUT_DIR=/tmp/prof    where perf/strace/stdout files go
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, makeImage, need, pushImage, registry2Config, sha256, start, stop, stowageConfig, waitHttp, STOWAGE_NODE_ARGS } from './lib.mjs';

need(['docker-registry', 'curl', 'dd']);
const MiB = 1024 * 1024;
const SIZE_MIB = 512;
const rounds = Number(process.env.ROUNDS ?? 3);
const clients = Number(process.env.CLIENTS ?? 1);
const run = promisify(execFile);
const outDir = process.env.OUT_DIR ?? '/tmp/prof';
mkdirSync(outDir, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'stowage-prof-'));

const upPort = await freePort();
writeFileSync(join(work, 'up.yml'), registry2Config(join(work, 'up'), upPort));
const up = start('upstream', 'docker-registry', ['serve', join(work, 'up.yml')]);
await waitHttp(`http://127.0.0.1:${upPort}/v2/`);
const image = makeImage([SIZE_MIB * MiB]);
await pushImage(`http://127.0.0.1:${upPort}`, 'bench/single', 'v1', image);
const digest = sha256(image.layers[0]);

/** tid -> [user, system] CPU-seconds of every thread of pid. */
function threadCpu(pid) {
  return new Map(readdirSync(`/proc/${pid}/task`).map((tid) => {
    const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
    return [tid, [Number(f[11]) / 100, Number(f[12]) / 100]];
  }));
}
const statusMiB = (pid, field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nodeArgs = (process.env.NODE_ARGS ?? '').split(' ').filter(Boolean);

for (let round = 0; round < rounds; round++) {
  const port = await freePort();
  const config = join(work, `s${round}.yml`);
  writeFileSync(config, stowageConfig(join(work, `s${round}`), port, `upstreams:\n  - {name: upstream.test, url: "http://127.0.0.1:${upPort}"}\ndefault_upstream: upstream.test\n`));
  const p = start('stowage', process.execPath, [...STOWAGE_NODE_ARGS, ...nodeArgs, 'dist/cli.js', 'serve', config]);
  const pid = String(p.proc.pid);
  await waitHttp(`http://127.0.0.1:${port}/v2/`);
  execFileSync('curl', ['-s', '-o', '/dev/null', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `http://127.0.0.1:${port}/v2/bench/single/manifests/v1`]);
  const idleRss = statusMiB(pid, 'VmRSS');
  const before = threadCpu(pid);
  const tracer = process.env.PERF ? spawn('perf', ['record', '-e', 'cpu-clock', '-F', '2000', '-g', '-p', pid, '-o', join(outDir, `perf-${round}.data`)], { stdio: 'ignore' })
    : process.env.STRACE ? spawn('strace', ['-c', '-f', '-p', pid, '-o', join(outDir, `strace-${round}.txt`)], { stdio: 'ignore' }) : undefined;
  if (tracer) await sleep(500);
  const t0 = process.hrtime.bigint();
  const url = `http://127.0.0.1:${port}/v2/bench/single/blobs/${digest}`;
  const sums = await Promise.all(Array.from({ length: clients }, () => (process.env.VERIFY
    ? run('bash', ['-c', `set -o pipefail; curl -s --fail ${url} | sha256sum`]).then((r) => `sha256:${r.stdout.split(' ')[0]}`)
    : run('curl', ['-s', '--fail', '-o', '/dev/null', url]).then(() => digest))));
  if (sums.some((d) => d !== digest)) throw new Error(`a client got wrong bytes: ${sums.join(' ')}`);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await sleep(500); // the commit (fsync, rename) follows the client's last byte
  if (tracer) { tracer.kill('SIGINT'); await new Promise((r) => tracer.once('exit', r)); }
  const used = [...threadCpu(pid)].map(([tid, [u, s]]) => ({ tid, user: u - (before.get(tid)?.[0] ?? 0), sys: s - (before.get(tid)?.[1] ?? 0) }));
  const sum = (ts) => ts.reduce((n, t) => n + t.user + t.sys, 0);
  const main = used.filter((t) => t.tid === pid);
  const others = used.filter((t) => t.tid !== pid);
  const pool = others.filter((t) => t.user < 0.005); // libuv's threads run only system calls here
  const v8 = others.filter((t) => t.user >= 0.005);
  const peakRss = statusMiB(pid, 'VmHWM');
  await stop(p);
  const output = p.output();
  if (process.env.NODE_ARGS) writeFileSync(join(outDir, `out-${round}.txt`), output);
  const markCompacts = nodeArgs.includes('--trace-gc') ? String((output.match(/Mark-Compact/g) ?? []).length) : '-';

  // Kept until the end like the rounds' blobs, so every round lands in memory the same way.
  const dd = spawnSync('bash', ['-c', `TIMEFORMAT=%S; time dd if=/dev/zero of=${join(work, `dd-${round}`)} bs=1M count=${SIZE_MIB} status=none`], { encoding: 'utf8' });
  const ddSys = Number(dd.stderr.trim().split('\n').pop());
  console.log(`round ${round}: ${seconds.toFixed(2)} s (${(SIZE_MIB / seconds).toFixed(0)} MiB/s per client, ${clients} client(s)); stowage CPU-s ${sum(used).toFixed(2)}: `
    + `main ${sum(main).toFixed(2)}, V8 workers ${sum(v8).toFixed(2)}, threadpool ${sum(pool).toFixed(2)}; mark-compacts ${markCompacts}; dd of ${SIZE_MIB} MiB right after: ${ddSys.toFixed(2)} CPU-s; `
    + `RSS idle ${idleRss.toFixed(0)} MiB, peak ${peakRss.toFixed(0)} MiB`);
}
await stop(up);
rmSync(work, { recursive: true, force: true });
