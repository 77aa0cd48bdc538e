// Benchmark (issue 17): cold pulls across a WAN stand-in, side by side in one run. The upstream is
// Debian's registry:2 with token auth (a token server of our own) that redirects blob GETs to a
// CDN (nginx serving its storage, through registry:2's `redirect` storage middleware), as Docker
// Hub does; the registry, the token realm and the CDN each sit behind bench/wan-relay.mjs (RTT
// 50 ms, 200 Mbit/s per connection by default). The caches (stowage; registry:2 in proxy mode)
// run on loopback beside their clients, as a site cache does.
//
// Measured: skopeo (into oci:, layers in parallel) and dockerd pulling a 10-layer image directly
// through the relay, through stowage cold and warm, through registry:2's proxy cold and warm;
// 8 concurrent cold skopeo clients of each against the same 8 warm; per cold pull the requests,
// new connections and bytes that reach the upstream side (relay counters, registry:2's access
// log, the token server, nginx's access log); stowage with its first mirror refusing connections
// and with it hung (accepts, never answers). CPU-seconds and peak RSS of each cache process; for
// the 8 concurrent clients also the whole machine's CPU-seconds cold and warm (/proc/stat), and
// the least time the cold run could take on this machine's cores.
//
// Usage: npm run build && node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/wan.mjs
//          [--runs N] [--rtt 50] [--rate 200mbit] [--no-docker] [--quick] [--only single,concurrent,mirrors,warmed]
//          (warmed: stowage's cold pull in a process that has just pulled another image; not in the default set)
//          [--clients skopeo,docker,curl] [--log info] (stowage's log level; its logs then go to stderr)
//          [--clients-cpu 1] (with `taskset -c 0 node ... bench/wan.mjs`: skopeo on CPU 1, the rest on CPU 0)
//          [--timeline] (where each stowage cold pull's time went: when each blob was stored, the
//          manifest answered, the client done, and how busy the cores were meanwhile)
// Environment: layer prefetch is on by default (issue 17); WAN_PREFETCH=0 adds PREFETCH_OFF_YAML
// (below) to stowage's upstream entry for the baseline without it, so two runs compare both;
// WAN_STOWAGE_YAML is appended to stowage's config file as it is; WAN_NODE_ARGS adds node flags
// to stowage's (--cpu-prof --cpu-prof-dir=DIR for a profile of each stowage process).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, freePort, peakRssMiB, settledCpuSeconds, start, stop, table, waitHttp, STOWAGE_NODE_ARGS } from './lib.mjs';
import { parseRate } from './wan-relay.mjs';
import { makeImage, pushImageHttp } from '../test/helpers/image.js';
import { startTokenServer } from '../test/helpers/token-server.js';
import { run, startDockerd } from '../test/helpers/image-dockerd.js';

/** The baseline switch: layer prefetch (issue 17, upstreams[].prefetch) off for this upstream. */
const PREFETCH_OFF_YAML = 'prefetch: {enabled: false}';
const prefetchOn = process.env.WAN_PREFETCH !== '0';

const args = process.argv.slice(2);
const opt = (name, fallback) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : fallback; };
/**
 * --clients-cpu N: skopeo runs on CPU N only. Run the bench itself under `taskset -c M` (another
 * CPU) and everything else (caches, relay, upstream) stays there: the clients then do not share
 * the cache's core, as on a real network.
 */
const clientsCpu = opt('--clients-cpu', undefined);
const quick = args.includes('--quick');
const runs = Number(opt('--runs', quick ? 1 : 3));
const rttMs = Number(opt('--rtt', 50));
const rateBps = parseRate(opt('--rate', '200mbit'));
const only = new Set((opt('--only', 'single,concurrent,mirrors')).split(','));
const withDocker = !args.includes('--no-docker') && (only.has('single') || only.has('warmed'));
const stowageLog = opt('--log', 'warn');
/** --timeline reads stowage's "blob cached" lines: its log runs at info for that (printed only with --log). */
const timeline = args.includes('--timeline');
const stowageLevel = timeline && stowageLog === 'warn' ? 'info' : stowageLog;
const MiB = 1024 * 1024;
for (const bin of ['docker-registry', 'skopeo', 'nginx', ...(withDocker ? ['dockerd'] : [])]) {
  if ((await run('sh', ['-c', `command -v ${bin}`])).code !== 0) {
    console.error(`bench: missing ${bin} (apt-get install -y docker-registry skopeo nginx-light docker.io)`);
    process.exit(2);
  }
}
const work = mkdtempSync(join(tmpdir(), 'stowage-wan-bench-'));
const procs = [];
const running = (p) => p.proc.exitCode === null && p.proc.signalCode === null;
const cleanup = async () => { for (const p of procs.reverse()) if (running(p)) await stop(p); };
// A failure anywhere leaves no process behind (the measurements' own finally stops dockerd).
process.on('exit', () => { for (const p of procs) if (running(p)) p.proc.kill('SIGKILL'); });

// ------------------------------------------------------------------ the images
// One large layer (~60% of the image), a few medium, several small: 10 layers, ~99 MiB.
const SIZES = [60, 16, 10, 6, 3, 2, 1, 0.5, 0.25, 0.05].map((m) => Math.round(m * MiB));
const images = {
  'bench/wan': makeImage({ seed: 1, layerSizes: SIZES, randomContent: true }),
  'bench/wan2': makeImage({ seed: 2, layerSizes: SIZES, randomContent: true }),
};
const imageBytes = (img) => [img.config, ...img.layers].reduce((n, b) => n + b.bytes.length, img.manifest.bytes.length);
const IMAGE_BYTES = imageBytes(images['bench/wan']);

// ------------------------------------------------------------------ the upstream side
const tokens = await startTokenServer();
const tokenPort = Number(new URL(tokens.realm).port);
const [upPort, cdnPort, relayUp, relayToken, relayCdn, relayRefused, relayHung, control] = await Promise.all(Array.from({ length: 8 }, freePort));
const upRoot = join(work, 'upstream');

// Seed the content through an open registry:2 on the same directory, then serve it with token auth.
const seedPort = await freePort();
writeFileSync(join(work, 'seed.yml'), r2Yaml(upRoot, seedPort, ''));
const seed = start('seed registry', 'docker-registry', ['serve', join(work, 'seed.yml')]);
procs.push(seed);
await waitHttp(`http://127.0.0.1:${seedPort}/v2/`);
for (const [repo, img] of Object.entries(images)) await pushImageHttp(`http://127.0.0.1:${seedPort}`, repo, 'v1', img);
await stop(seed);

writeFileSync(join(work, 'upstream.yml'), r2Yaml(upRoot, upPort, `auth:
  token:
    realm: http://127.0.0.1:${relayToken}/token
    service: ${tokens.service}
    issuer: ${tokens.issuer}
    rootcertbundle: ${tokens.caFile}
middleware:
  storage:
    - name: redirect
      options:
        baseurl: http://127.0.0.1:${relayCdn}/
`));
const upstream = start('upstream registry:2', 'docker-registry', ['serve', join(work, 'upstream.yml')]);
procs.push(upstream);
await waitHttp(`http://127.0.0.1:${upPort}/v2/`);

// The CDN: nginx serving registry:2's storage at the paths its redirects name.
mkdirSync(join(work, 'nginx'), { recursive: true });
const cdnLog = join(work, 'nginx', 'access.log');
writeFileSync(join(work, 'nginx.conf'), `daemon off; user root; worker_processes 1; pid ${work}/nginx.pid; error_log ${work}/nginx/error.log;
events { worker_connections 1024; }
http { access_log ${cdnLog}; sendfile on; tcp_nopush on; keepalive_timeout 75s; keepalive_requests 100000;
  client_body_temp_path ${work}/nginx; proxy_temp_path ${work}/nginx; fastcgi_temp_path ${work}/nginx; uwsgi_temp_path ${work}/nginx; scgi_temp_path ${work}/nginx;
  server { listen 127.0.0.1:${cdnPort}; root ${upRoot}; default_type application/octet-stream; } }`);
procs.push(start('nginx', 'nginx', ['-c', join(work, 'nginx.conf'), '-p', work]));

// A mirror that accepts connections and never answers.
const held = new Set();
const hung = createServer((s) => { held.add(s); s.on('error', () => undefined); s.on('close', () => held.delete(s)); });
const hungPort = await new Promise((r) => hung.listen(0, '127.0.0.1', () => r(hung.address().port)));

// The WAN: one relay process (its own event loop) in front of each remote piece. Port 1 refuses.
const relay = start('wan-relay', process.execPath, ['bench/wan-relay.mjs', '--rtt', String(rttMs), '--rate', String(rateBps), '--control', String(control),
  `${relayUp}=127.0.0.1:${upPort}`, `${relayToken}=127.0.0.1:${tokenPort}`, `${relayCdn}=127.0.0.1:${cdnPort}`,
  `${relayRefused}=127.0.0.1:1`, `${relayHung}=127.0.0.1:${hungPort}`]);
procs.push(relay);
await waitHttp(`http://127.0.0.1:${control}/stats`);

// ------------------------------------------------------------------ counting at the upstream side

async function snapshot() {
  const relays = await (await fetch(`http://127.0.0.1:${control}/stats`)).json();
  const r2 = upstream.output().split('\n').flatMap((l) => {
    const m = /"(GET|HEAD) (\S+) HTTP\/1\.[01]" (\d{3})/.exec(l);
    return m ? [{ method: m[1], path: m[2], status: Number(m[3]) }] : [];
  });
  const cdn = existsSync(cdnLog) ? readFileSync(cdnLog, 'utf8').split('\n').filter(Boolean).length : 0;
  return { relays, r2, cdn, tokens: tokens.requests.length };
}

/** What reached the upstream side between two snapshots. */
function delta(a, b) {
  const r2 = b.r2.slice(a.r2.length);
  const count = (f) => r2.filter(f).length;
  const conn = (port) => b.relays[port].connections - a.relays[port].connections;
  const down = (port) => b.relays[port].bytesDown - a.relays[port].bytesDown;
  return {
    token: b.tokens - a.tokens,
    ping: count((r) => r.path === '/v2/'),
    unauthorized: count((r) => r.status === 401),
    manifestHead: count((r) => r.method === 'HEAD' && r.path.includes('/manifests/') && r.status !== 401),
    manifestGet: count((r) => r.method === 'GET' && r.path.includes('/manifests/') && r.status !== 401),
    blobHead: count((r) => r.method === 'HEAD' && r.path.includes('/blobs/') && r.status !== 401),
    blobGet: count((r) => r.method === 'GET' && r.path.includes('/blobs/') && r.status !== 401),
    cdnGet: b.cdn - a.cdn,
    connRegistry: conn(relayUp), connToken: conn(relayToken), connCdn: conn(relayCdn), connMirror: conn(relayRefused) + conn(relayHung),
    bytes: down(relayUp) + down(relayToken) + down(relayCdn),
  };
}

// ------------------------------------------------------------------ clients and caches

let pulls = 0;
async function skopeo(port, repo = 'bench/wan') {
  const dest = join(work, `oci-${++pulls}`);
  const t0 = performance.now();
  const argv = ['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${port}/${repo}:v1`, `oci:${dest}:v1`];
  const r = clientsCpu === undefined
    ? await run('skopeo', argv, { timeoutMs: 600_000 })
    : await run('taskset', ['-c', clientsCpu, 'skopeo', ...argv], { timeoutMs: 600_000 });
  const s = (performance.now() - t0) / 1000;
  rmSync(dest, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`skopeo from ${port} failed: ${r.stderr.slice(-2000)}`);
  return s;
}
const concurrent = async (n, fn) => {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, fn));
  return (performance.now() - t0) / 1000;
};

/**
 * Raw HTTP, the server's own cost without a client's: curl GETs the manifest by tag, then every
 * blob, three at a time (as dockerd downloads), bodies discarded. Direct, it first asks the token
 * realm (through the relay) and follows the CDN redirects, as a client must.
 */
async function curlPull(port, repo = 'bench/wan') {
  const img = images[repo];
  const base = `http://127.0.0.1:${port}/v2/${repo}`;
  const t0 = performance.now();
  const auth = [];
  if (port === relayUp) {
    const res = await fetch(`http://127.0.0.1:${relayToken}/token?service=${encodeURIComponent(tokens.service)}&scope=repository:${repo}:pull`);
    auth.push('-H', `Authorization: Bearer ${(await res.json()).token}`);
  }
  const curl = async (argv) => {
    const r = await run('curl', ['-s', '--fail', '-L', ...auth, ...argv], { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`curl from ${port} failed (${r.code}): ${r.stderr.slice(-500)}`);
  };
  await curl(['-H', `Accept: ${img.manifest.mediaType}`, '-o', '/dev/null', `${base}/manifests/v1`]);
  await curl(['--parallel', '--parallel-max', '3', ...[img.config, ...img.layers].flatMap((b) => ['-o', '/dev/null', `${base}/blobs/${b.digest}`])]);
  return (performance.now() - t0) / 1000;
}
Object.defineProperty(curlPull, 'name', { value: 'curl' });

let dockerd;
async function dockerPull(port, repo = 'bench/wan') {
  const ref = `127.0.0.1:${port}/${repo}:v1`;
  const t0 = performance.now();
  await dockerd.docker(['pull', '-q', ref]);
  const s = (performance.now() - t0) / 1000;
  await dockerd.docker(['rmi', '-f', ref]);
  return s;
}

let caches = 0;
async function startStowage(mirrors = '') {
  const port = await freePort();
  const root = join(work, `stowage-${++caches}`);
  const prefetch = prefetchOn ? '' : `\n    ${PREFETCH_OFF_YAML}`;
  writeFileSync(`${root}.yml`, `version: 0.1
log:
  level: ${stowageLevel}
storage:
  filesystem:
    rootdirectory: ${root}
http:
  addr: 127.0.0.1:${port}
upstreams:
  - name: wan.test
    url: http://127.0.0.1:${relayUp}${mirrors}${prefetch}
default_upstream: wan.test
${process.env.WAN_STOWAGE_YAML ?? ''}
`);
  const p = start('stowage', process.execPath, [...STOWAGE_NODE_ARGS, ...(process.env.WAN_NODE_ARGS ?? '').split(' ').filter(Boolean), 'dist/cli.js', 'serve', `${root}.yml`]);
  procs.push(p);
  await waitHttp(`http://127.0.0.1:${port}/v2/`);
  return { ...p, port, root };
}
async function startR2Proxy() {
  const port = await freePort();
  const root = join(work, `r2proxy-${++caches}`);
  writeFileSync(`${root}.yml`, r2Yaml(root, port, `proxy:\n  remoteurl: http://127.0.0.1:${relayUp}\n`, false));
  const p = start('registry:2 proxy', 'docker-registry', ['serve', `${root}.yml`]);
  procs.push(p);
  await waitHttp(`http://127.0.0.1:${port}/v2/`);
  return { ...p, port, root };
}
const startCache = (kind) => (kind === 'stowage' ? startStowage() : startR2Proxy());

/** A cold pull through a fresh cache, then a warm one: times, upstream counts, CPU, RSS. */
async function coldWarm(kind, client) {
  const c = await startCache(kind);
  const before = await snapshot();
  const cpu0 = cpuSeconds(c.proc.pid);
  const sampler = timeline && kind === 'stowage' ? coreSampler() : undefined;
  const t0 = Date.now();
  const cold = await client(c.port);
  const cores = sampler?.stop();
  const cpu = await settledCpuSeconds(c.proc.pid) - cpu0;
  const coldTimeline = cores ? readTimeline(c.output(), t0, cold, cores) : undefined;
  const counts = delta(before, await snapshot());
  const warm = await client(c.port);
  const rss = peakRssMiB(c.proc.pid);
  await stop(c);
  if (kind === 'stowage' && stowageLog !== 'warn') process.stderr.write(`--- stowage, ${client.name} cold then warm\n${c.output()}`);
  rmSync(c.root, { recursive: true, force: true });
  return { cold, warm, cpu, rss, counts, ...(coldTimeline ? { timeline: coldTimeline } : {}) };
}

/**
 * CPU-seconds every process on the machine has used so far (/proc/stat, every core: user, nice,
 * system, irq, softirq, steal). Over a phase it says what the phase cost the machine: the relay,
 * the upstream and the clients included. Divided by the cores, it is the least wall time the
 * same work can take here.
 */
function machineBusySeconds() {
  const f = cpuTicks();
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100; // USER_HZ is 100 on Linux
}

/** The machine's CPU time so far in ticks, every core together (/proc/stat's `cpu` line). */
const cpuTicks = () => readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);

/** /proc/stat every 100 ms until stop(): how many cores were busy in each interval. */
function coreSampler() {
  const read = () => {
    const f = cpuTicks();
    return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0), at: Date.now() };
  };
  const samples = [];
  let prev = read();
  const timer = setInterval(() => {
    const now = read();
    const dt = now.total - prev.total;
    if (dt > 0) samples.push({ at: now.at, busy: (1 - (now.idle - prev.idle) / dt) * cpus().length });
    prev = now;
  }, 100);
  return { stop: () => { clearInterval(timer); return samples; } };
}

/** From stowage's log of a cold pull that started at t0 (ms): when the manifest was answered and each blob stored. */
function readTimeline(log, t0, coldSeconds, cores) {
  const lines = log.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l); } catch { return undefined; } }).filter(Boolean);
  const at = (j) => (Date.parse(j.time) - t0) / 1000;
  const manifest = lines.find((j) => j.msg === 'request' && /\/manifests\//.test(j.url ?? '') && j.method === 'GET');
  const blobs = lines.filter((j) => j.msg === 'blob cached').map((j) => ({ at: at(j), bytes: j.bytes })).filter((b) => b.at <= coldSeconds + 1).sort((a, b) => a.at - b.at);
  const last = blobs.at(-1)?.at ?? NaN;
  const largest = blobs.reduce((m, b) => (b.bytes > (m?.bytes ?? -1) ? b : m), undefined);
  const mean = (from, to) => {
    const w = cores.filter((c) => c.at > t0 + from * 1000 && c.at <= t0 + to * 1000);
    return w.length ? w.reduce((a, c) => a + c.busy, 0) / w.length : NaN;
  };
  const answered = manifest ? at(manifest) : NaN;
  return { manifest: answered, blobs, last, largest, done: coldSeconds, busyManifest: mean(0, answered), busyBlobs: mean(answered, last) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Runs `measure` `runs` times; the run with the median cold (or only) time is kept whole. */
async function repeated(measure, key = 'cold') {
  const all = [];
  for (let i = 0; i < runs; i++) all.push(await measure());
  const m = median(all.map((r) => r[key]));
  return { ...all.find((r) => r[key] === m), [key]: m, [`${key}All`]: all.map((r) => r[key]) };
}

// ------------------------------------------------------------------ the measurements
const R = {};
const wanted = new Set(opt('--clients', 'curl,skopeo,docker').split(','));
const clients = { ...(wanted.has('curl') ? { curl: curlPull } : {}), ...(wanted.has('skopeo') ? { skopeo } : {}), ...(withDocker && wanted.has('docker') ? { docker: dockerPull } : {}) };
if (withDocker) {
  mkdirSync(join(work, 'docker'), { recursive: true });
  dockerd = await startDockerd(join(work, 'docker'));
}
try {
  for (const [name, client] of only.has('single') ? Object.entries(clients) : []) {
    R[name] = {};
    R[name].direct = await repeated(async () => {
      const before = await snapshot();
      const cold = await client(relayUp);
      return { cold, counts: delta(before, await snapshot()) };
    });
    for (const kind of ['stowage', 'registry:2']) R[name][kind] = await repeated(() => coldWarm(kind, client));
  }

  // 8 concurrent clients (skopeo): direct, then each cache cold and the same 8 warm.
  const N = 8;
  if (only.has('concurrent')) {
    const before = await snapshot();
    R.concurrent = { direct: { cold: await concurrent(N, () => skopeo(relayUp)), counts: delta(before, await snapshot()) } };
  }
  for (const kind of only.has('concurrent') ? ['stowage', 'registry:2'] : []) {
    const c = await startCache(kind);
    const before = await snapshot();
    const cpu0 = cpuSeconds(c.proc.pid);
    const busy0 = machineBusySeconds();
    const cold = await concurrent(N, () => skopeo(c.port));
    const busyCold = machineBusySeconds() - busy0;
    const cpu = await settledCpuSeconds(c.proc.pid) - cpu0;
    const counts = delta(before, await snapshot());
    const busy1 = machineBusySeconds();
    const warm = await concurrent(N, () => skopeo(c.port));
    const busyWarm = machineBusySeconds() - busy1;
    R.concurrent[kind] = { cold, warm, cpu, counts, rss: peakRssMiB(c.proc.pid), busyCold, busyWarm };
    await stop(c);
  }

  // A cold pull in a stowage that has just pulled another image (its upstream connections open,
  // the token realm known), as in a cache that serves traffic, against the fresh process above.
  for (const [name, client] of only.has('warmed') ? Object.entries(clients) : []) {
    R[name] ??= {};
    R[name].warmed = await repeated(async () => {
      const c = await startStowage();
      await client(c.port, 'bench/wan2');
      const cold = await client(c.port, 'bench/wan');
      await stop(c);
      rmSync(c.root, { recursive: true, force: true });
      return { cold };
    });
  }

  // Mirrors (stowage, skopeo): the first mirror refuses connections; the first mirror hangs.
  if (only.has('mirrors') && !only.has('single')) R.skopeo = { stowage: await repeated(() => coldWarm('stowage', skopeo)) };
  for (const [name, port] of only.has('mirrors') ? [['refused', relayRefused], ['hung', relayHung]] : []) {
    const c = await startStowage(`\n    mirrors:\n      - url: http://127.0.0.1:${port}`);
    const before = await snapshot();
    const first = await skopeo(c.port, 'bench/wan');
    const mid = await snapshot();
    const second = await skopeo(c.port, 'bench/wan2');
    R[`mirror-${name}`] = { first, second, counts: delta(before, mid), counts2: delta(mid, await snapshot()), rss: peakRssMiB(c.proc.pid) };
    await stop(c);
    if (stowageLog !== 'warn') process.stderr.write(`--- stowage, first mirror ${name}\n${c.output()}`);
  }
} finally {
  await dockerd?.stop();
  const relayCpu = cpuSeconds(relay.proc.pid);
  R.relayCpu = relayCpu;
  await cleanup();
  hung.close();
  for (const s of held) s.destroy();
  await tokens.close();
}

// ------------------------------------------------------------------ the report
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const all = (r) => (r?.coldAll?.length > 1 ? ` (${r.coldAll.map((x) => f(x)).join(', ')})` : '');
const has = (section) => only.has(section);
const rows = [['pull (s)', 'direct', 'stowage cold', 'stowage warm', 'registry:2 cold', 'registry:2 warm', 'stowage cold / direct', 'registry:2 cold / direct']];
for (const name of has('single') ? Object.keys(clients) : []) {
  const d = R[name].direct, s = R[name].stowage, g = R[name]['registry:2'];
  rows.push([`${name}, one client`, `${f(d.cold)}${all(d)}`, `${f(s.cold)}${all(s)}`, f(s.warm), `${f(g.cold)}${all(g)}`, f(g.warm), f(s.cold / d.cold), f(g.cold / d.cold)]);
}
const warmedRows = [['cold pull (s)', 'direct', 'stowage, fresh process', 'stowage, after pulling another image', 'fresh / direct', 'after another / direct']];
for (const name of has('warmed') ? Object.keys(clients) : []) {
  const d = R[name].direct, s = R[name].stowage, w = R[name].warmed;
  warmedRows.push([`${name}, one client`, d ? `${f(d.cold)}${all(d)}` : '-', s ? `${f(s.cold)}${all(s)}` : '-', `${f(w.cold)}${all(w)}`, d && s ? f(s.cold / d.cold) : '-', d ? f(w.cold / d.cold) : '-']);
}
const C = R.concurrent;
if (C) rows.push(['skopeo, 8 clients at once', f(C.direct.cold), f(C.stowage.cold), f(C.stowage.warm), f(C['registry:2'].cold), f(C['registry:2'].warm),
  f(C.stowage.cold / C.direct.cold), f(C['registry:2'].cold / C.direct.cold)]);

const cost = [['cache process', 'CPU-s, one cold pull (skopeo)', 'CPU-s, 8 cold clients', 'peak RSS one client (MiB)', 'peak RSS 8 clients (MiB)', '8 cold / 8 warm']];
for (const kind of C && R.skopeo?.['registry:2'] ? ['stowage', 'registry:2'] : []) {
  cost.push([kind, f(R.skopeo[kind].cpu), f(C[kind].cpu), f(R.skopeo[kind].rss, 0), f(C[kind].rss, 0), f(C[kind].cold / C[kind].warm)]);
}
// What 8 cold pulls cost the whole machine against the same 8 warm: on shared cores the cold run's
// wall time cannot be below its CPU-seconds over the cores, whatever the cache does.
const cores = cpus().length;
const machine = [['8 skopeo clients, whole machine', 'CPU-s cold', 'CPU-s warm', 'cores busy cold / warm', `least cold time on ${cores} cores (s)`, 'that / 8 warm', 'measured 8 cold / 8 warm']];
for (const kind of C ? ['stowage', 'registry:2'] : []) {
  const k = C[kind];
  machine.push([kind, f(k.busyCold), f(k.busyWarm), `${f(k.busyCold / k.cold)} / ${f(k.busyWarm / k.warm)}`, f(k.busyCold / cores), f(k.busyCold / cores / k.warm), f(k.cold / k.warm)]);
}

const trips = [['per cold pull, at the upstream side', 'token GETs', '/v2/ pings', '401s', 'manifest HEAD', 'manifest GET', 'blob HEAD', 'blob GET (307)', 'CDN GET',
  'new conn: registry / token / CDN', 'conn to dead mirror', 'MiB down', 'bytes / image']];
const tripRow = (label, c) => trips.push([label, c.token, c.ping, c.unauthorized, c.manifestHead, c.manifestGet, c.blobHead, c.blobGet, c.cdnGet,
  `${c.connRegistry} / ${c.connToken} / ${c.connCdn}`, c.connMirror, f(c.bytes / MiB, 1), f(c.bytes / IMAGE_BYTES)]);
for (const name of has('single') ? Object.keys(clients) : []) {
  tripRow(`${name} direct`, R[name].direct.counts);
  tripRow(`${name} through stowage`, R[name].stowage.counts);
  tripRow(`${name} through registry:2 proxy`, R[name]['registry:2'].counts);
}
if (C) {
  tripRow('8 skopeo direct (all 8)', C.direct.counts);
  tripRow('8 skopeo through stowage (all 8)', C.stowage.counts);
  tripRow('8 skopeo through registry:2 proxy (all 8)', C['registry:2'].counts);
}
if (has('mirrors')) {
  tripRow('stowage, first mirror refusing, first pull', R['mirror-refused'].counts);
  tripRow('stowage, first mirror hung, first pull', R['mirror-hung'].counts);
  tripRow('stowage, first mirror hung, next pull', R['mirror-hung'].counts2);
}

const s1 = R.skopeo?.stowage?.cold;
const mirrors = !has('mirrors') ? [] : [['stowage cold, skopeo', 'first pull (s)', 'added vs no mirror', 'next pull, other image (s)', 'added vs no mirror'],
  ['no mirror (above)', f(s1), '-', '-', '-'],
  ...['refused', 'hung'].map((n) => [`first mirror ${n}`, f(R[`mirror-${n}`].first), `${f((R[`mirror-${n}`].first - s1) * 1000, 0)} ms`,
    f(R[`mirror-${n}`].second), `${f((R[`mirror-${n}`].second - s1) * 1000, 0)} ms`])];

const timelines = !timeline ? [] : Object.keys(clients).filter((n) => R[n]?.stowage?.timeline).map((n) => {
  const t = R[n].stowage.timeline;
  return `${n} through stowage, cold (the median run): the manifest answered at ${f(t.manifest)} s; blobs stored (verified, committed) at ${t.blobs.map((b) => f(b.at)).join(', ')} s; `
    + `the largest (${f((t.largest?.bytes ?? NaN) / MiB, 1)} MiB) at ${f(t.largest?.at)} s; the client done at ${f(t.done)} s. `
    + `Cores busy (of ${cpus().length}; /proc/stat every 100 ms): ${f(t.busyManifest)} until the manifest, ${f(t.busyBlobs)} from then to the last blob`;
});

const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const report = `## cold pulls across a WAN stand-in (bench/wan.mjs, ${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}, load average at the end ${load}${clientsCpu === undefined ? "" : `; skopeo on CPU ${clientsCpu} only, everything else on the CPUs the bench was started with`}
WAN: bench/wan-relay.mjs, RTT ${rttMs} ms, ${rateBps / 1e6} Mbit/s per connection, in front of the registry (registry:2, token auth), its token realm and its CDN (nginx)
image: 10 layers + config, ${f(IMAGE_BYTES / MiB, 1)} MiB (largest layer ${f(SIZES[0] / MiB, 0)} MiB); median of ${runs} run(s)${withDocker ? `; dockerd ${dockerd.driver}` : ''}; layer prefetch ${prefetchOn ? 'on' : 'off (WAN_PREFETCH=0)'}
relay process: ${f(R.relayCpu)} CPU-s for the whole run

${[rows, warmedRows, cost, machine, trips, mirrors].filter((t) => t.length > 1).map(table).join('\n\n')}
${timelines.length ? `\n${timelines.join('\n')}\n` : ''}`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `wan-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });

/** A registry:2 config; the upstream keeps its access log (the request counts come from it). */
function r2Yaml(root, port, extra, accessLog = true) {
  return `version: 0.1
log:
  level: ${accessLog ? 'info' : 'error'}
  formatter: text
  accesslog:
    disabled: ${!accessLog}
storage:
  filesystem:
    rootdirectory: ${root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${extra}`;
}
