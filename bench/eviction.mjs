// Benchmark (issue 10): what evicting costs the pulls that run meanwhile. A pinned 256 MiB image
// is pulled warm (skopeo) alone, then again while other clients pull images that do not fit the
// cache budget, so every one of their pulls makes stowage evict. Eviction pass times come from
// stowage's log. One run, same machine.
// Usage: npm run build && node bench/eviction.mjs
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { freePort, makeImage, need, registry2Config, start, stop, stowageConfig, table, waitHttp, writeOciLayout, STOWAGE_NODE_ARGS } from './lib.mjs';

need(['docker-registry', 'skopeo']);
const MiB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'stowage-evict-bench-'));
const upPort = await freePort();
writeFileSync(join(work, 'up.yml'), registry2Config(join(work, 'up'), upPort));
const up = start('upstream', 'docker-registry', ['serve', join(work, 'up.yml')]);
await waitHttp(`http://127.0.0.1:${upPort}/v2/`);
const seed = (name, sizes) => {
  const layout = join(work, `layout-${name}`);
  writeOciLayout(layout, 'v1', makeImage(sizes));
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://127.0.0.1:${upPort}/bench/${name}:v1`]);
  rmSync(layout, { recursive: true, force: true });
};
seed('hot', [64 * MiB, 64 * MiB, 64 * MiB, 64 * MiB]);
const COLD = 20;
for (let i = 0; i < COLD; i++) seed(`cold${i}`, [16 * MiB]);

const port = await freePort();
writeFileSync(join(work, 's.yml'), stowageConfig(join(work, 's'), port,
  `upstreams:\n  - {name: up.test, url: "http://127.0.0.1:${upPort}"}\ndefault_upstream: up.test\ncache:\n  max_size: 320MiB\n  low_watermark: 90%\n  min_age: 1s\n  interval: 500ms\n  pin: ["up.test/bench/hot:*"]\n`).replace('level: warn', 'level: info'));
const s = start('stowage', process.execPath, [...STOWAGE_NODE_ARGS, 'dist/cli.js', 'serve', join(work, 's.yml')]);
await waitHttp(`http://127.0.0.1:${port}/v2/`);

const pullHot = () => {
  const t0 = process.hrtime.bigint();
  execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${port}/bench/hot:v1`, `dir:${join(work, 'hot-out')}`]);
  rmSync(join(work, 'hot-out'), { recursive: true, force: true });
  return Number(process.hrtime.bigint() - t0) / 1e9;
};
pullHot(); // cold once: now cached, and pinned
const RUNS = 8;
const alone = [];
for (let i = 0; i < RUNS; i++) alone.push(pullHot());

let stopBackground = false;
let backgroundPulls = 0;
let next = 0;
const worker = async () => {
  while (!stopBackground) {
    const i = next++;
    await new Promise((resolve, reject) => {
      const p = spawn('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${port}/bench/cold${i % COLD}:v1`, `dir:${join(work, `bg-${i}`)}`], { stdio: 'ignore' });
      p.on('exit', (code) => { rmSync(join(work, `bg-${i}`), { recursive: true, force: true }); code === 0 ? resolve() : reject(new Error(`background pull exited ${code}`)); });
    });
    backgroundPulls++;
  }
};
const background = Promise.all([worker(), worker(), worker()]);
await new Promise((r) => setTimeout(r, 3000)); // the budget is full and evictions are under way
const busy = [];
for (let i = 0; i < RUNS; i++) busy.push(pullHot());
stopBackground = true;
await background;

const passes = s.output().split('\n').filter((l) => l.includes('"msg":"cache eviction')).map((l) => JSON.parse(l));
const passMs = passes.map((p) => p.ms).sort((a, b) => a - b);
const evicted = passes.reduce((n, p) => n + p.evicted, 0);
const freed = passes.reduce((n, p) => n + p.bytesFreed, 0);
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
await stop(s);
await stop(up);

const head = `Eviction beside pulls: ${cpus().length} cores ${cpus()[0]?.model ?? ''}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString()}\n`
  + `budget 320 MiB; background: 3 clients, ${backgroundPulls} pulls of twenty 16 MiB images (each a miss, each making room); foreground: warm pulls of a pinned 256 MiB image\n\n`;
const report = head + table([
  ['measure', 'value'],
  ['warm 256 MiB pull, alone (mean of 8)', `${mean(alone).toFixed(2)} s`],
  ['warm 256 MiB pull, beside pulls + eviction (mean of 8)', `${mean(busy).toFixed(2)} s (${(mean(busy) / mean(alone)).toFixed(2)}x)`],
  ['eviction passes / images evicted / bytes freed', `${passes.length} / ${evicted} / ${(freed / MiB).toFixed(0)} MiB`],
  ['eviction pass time p50 / max', passMs.length ? `${passMs[Math.floor(passMs.length / 2)]} ms / ${passMs.at(-1)} ms` : '-'],
]);
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `eviction-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), `${report}\n`);
rmSync(work, { recursive: true, force: true });
