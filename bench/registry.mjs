// Benchmark (issue 2): stowage vs registry:2 (Debian docker-registry 2.8.2) vs nginx, same content,
// one run, side by side. Usage: npm run build && node bench/registry.mjs [--seconds 10]
// Issue 17 adds warm manifest GETs in the shipped config (config/config.yml, log.level info, the
// docker.io upstream pointed at a local registry:2) against nginx serving a file of the same size:
// a pushed manifest and a cached one, by tag and by digest. `--shipped-only` runs just those rows;
// `--baseline DIR` runs them for another checkout's build too (DIR/dist/cli.js), for before/after.
// Those rows pin each server to CPU 1 and wrk to CPU 0 (`--no-pin`: not).
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  freePort, makeImage, need, peakRssMiB, pushImage, registry2Config, sha256, start, stop, stowageConfig,
  table, waitHttp, wrk, writeOciLayout, STOWAGE_NODE_ARGS } from './lib.mjs';

const arg = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const seconds = Number(arg('--seconds')) || 10;
const shippedOnly = process.argv.includes('--shipped-only');
// The shipped-config rows run each server on CPU 1 and wrk on CPU 0 (nginx and stowage alike).
// Unpinned, the scheduler put the server beside wrk's threads in some runs and not in others, and
// the same build's CPU per request moved 2x between runs (issue 17). --no-pin: as before.
const pin = !process.argv.includes('--no-pin') && cpus().length >= 2;
const SERVER_CPU = 1;
const WRK_CPU = pin ? 0 : undefined;
const baseline = arg('--baseline');
need(['wrk', 'nginx', 'docker-registry', 'skopeo']);
const work = mkdtempSync(join(tmpdir(), 'stowage-bench-'));
const MiB = 1024 * 1024;

// Content: one image with a 64 MiB layer, pushed into registry:2; stowage then serves a copy of
// registry:2's own data directory (same bytes, same layout).
const r2Root = join(work, 'r2');
const r2Port = await freePort();
writeFileSync(join(work, 'r2.yml'), registry2Config(r2Root, r2Port));
const r2 = start('registry:2', 'docker-registry', ['serve', join(work, 'r2.yml')]);
const r2Url = `http://127.0.0.1:${r2Port}`;
await waitHttp(`${r2Url}/v2/`);
const image = makeImage([64 * MiB]);
await pushImage(r2Url, 'bench/big', 'latest', image);
// A manifest of a realistic size (10 layers: ~1.5 KiB) for the shipped-config rows.
const webImage = makeImage(Array(10).fill(4096));
await pushImage(r2Url, 'bench/web', 'latest', webImage);
const blobDigest = sha256(image.layers[0]);
execFileSync('cp', ['-a', r2Root, join(work, 'st')]);

const stPort = await freePort();
writeFileSync(join(work, 'st.yml'), stowageConfig(join(work, 'st'), stPort));
const st = start('stowage', process.execPath, [...STOWAGE_NODE_ARGS, 'dist/cli.js', 'serve', join(work, 'st.yml')]);
const stUrl = `http://127.0.0.1:${stPort}`;
await waitHttp(`${stUrl}/v2/`);

// nginx serving the very same blob file with sendfile: the ceiling for raw file serving.
const ngPort = await freePort();
const hex = blobDigest.slice(7);
const blobFile = join(r2Root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
const manifestDigest = sha256(webImage.manifest);
const manifestFile = join(r2Root, 'docker/registry/v2/blobs/sha256', manifestDigest.slice(7, 9), manifestDigest.slice(7), 'data');
mkdirSync(join(work, 'nginx'), { recursive: true });
writeFileSync(join(work, 'nginx.conf'), `daemon off; user root; worker_processes 1; pid ${work}/nginx.pid; error_log ${work}/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path ${work}/nginx; proxy_temp_path ${work}/nginx; fastcgi_temp_path ${work}/nginx; uwsgi_temp_path ${work}/nginx; scgi_temp_path ${work}/nginx;
  server { listen 127.0.0.1:${ngPort}; location = /blob { alias ${blobFile}; default_type application/octet-stream; }
    location = /manifest { alias ${manifestFile}; default_type application/vnd.oci.image.manifest.v1+json; } } }`);
const ng = start('nginx', 'nginx', ['-c', join(work, 'nginx.conf'), '-p', work]);
await waitHttp(`http://127.0.0.1:${ngPort}/blob`);

const blobPath = `/v2/bench/big/blobs/${blobDigest}`;
const accept = 'Accept: application/vnd.oci.image.manifest.v1+json';
const gbs = (b) => (b / 1024 ** 3).toFixed(2);
const ratio = (a, b) => (a / b).toFixed(2);
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const machine = `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}`;
let report = '';

if (!shippedOnly) {
  const results = {};
  for (const [name, url] of [['stowage', stUrl], ['registry:2', r2Url]]) {
    wrk(`${url}${blobPath}`, { seconds: 2 }); // warm the page cache and the JIT
    results[name] = {
      blob: wrk(`${url}${blobPath}`, { seconds }),
      manifest: wrk(`${url}/v2/bench/big/manifests/latest`, { seconds, headers: [accept] }),
    };
  }
  wrk(`http://127.0.0.1:${ngPort}/blob`, { seconds: 2 });
  results.nginx = { blob: wrk(`http://127.0.0.1:${ngPort}/blob`, { seconds }) };

  // Push a 512 MiB image (4 x 128 MiB layers) with skopeo, into a fresh repository each run.
  const layout = join(work, 'layout');
  writeOciLayout(layout, 'v1', makeImage([128 * MiB, 128 * MiB, 128 * MiB, 128 * MiB]));
  const pushTimes = { stowage: [], 'registry:2': [] };
  for (let run = 0; run < 2; run++) {
    for (const [name, port] of [['stowage', stPort], ['registry:2', r2Port]]) {
      const t0 = process.hrtime.bigint();
      execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://127.0.0.1:${port}/push/run${run}:v1`]);
      pushTimes[name].push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rss = { stowage: peakRssMiB(st.proc.pid), 'registry:2': peakRssMiB(r2.proc.pid) };
  const S = results.stowage, R = results['registry:2'], N = results.nginx;
  const rows = [
    ['metric', 'stowage', 'registry:2', 'nginx', 'stowage / registry:2', 'stowage / nginx'],
    ['blob GET 64 MiB, 16 conn (GiB/s)', gbs(S.blob.bytesPerSec), gbs(R.blob.bytesPerSec), gbs(N.blob.bytesPerSec), ratio(S.blob.bytesPerSec, R.blob.bytesPerSec), ratio(S.blob.bytesPerSec, N.blob.bytesPerSec)],
    ['manifest GET by tag (req/s)', S.manifest.rps.toFixed(0), R.manifest.rps.toFixed(0), '-', ratio(S.manifest.rps, R.manifest.rps), '-'],
    ['manifest GET p99 latency', S.manifest.p99, R.manifest.p99, '-', '-', '-'],
    ['push 512 MiB image, skopeo (s, median of 2)', median(pushTimes.stowage).toFixed(2), median(pushTimes['registry:2']).toFixed(2), '-', ratio(median(pushTimes.stowage), median(pushTimes['registry:2'])), '-'],
    ['peak RSS over the whole run (MiB)', rss.stowage.toFixed(0), rss['registry:2'].toFixed(0), '-', ratio(rss.stowage, rss['registry:2']), '-'],
  ];
  const errors = `stowage ${S.blob.non2xx + S.manifest.non2xx}, registry:2 ${R.blob.non2xx + R.manifest.non2xx}, nginx ${N.blob.non2xx}`;
  report += `## stowage vs registry:2 vs nginx (${new Date().toISOString()})
machine: ${machine}, load average ${load()}; wrk -t2 -c16 -d${seconds}s; loopback; stowage log.level warn
${table(rows)}
non-2xx responses during wrk: ${errors}
`;
}
await stop(st);

/** CPU-seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const rssNowMiB = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/**
 * stowage as shipped (config/config.yml: log.level info, docker.io the default upstream, here
 * pointed at the registry:2 above), its log written to a file as a log collector would take it.
 * A pushed manifest (bench/pushed) and a cached one (bench/web through docker.io), by tag and by
 * digest: the very bytes nginx serves as /manifest.
 */
async function shippedConfig(cli) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, `shipped-${port}`), REGISTRY_UPSTREAMS_0_URL: r2Url,
  };
  const logFd = openSync(join(work, `shipped-${port}.log`), 'w');
  const argv = [process.execPath, ...STOWAGE_NODE_ARGS, cli, 'serve', '--config', 'config/config.yml'];
  // taskset execs node: the pid is stowage's.
  const proc = pin
    ? spawn('taskset', ['-c', String(SERVER_CPU), ...argv], { stdio: ['ignore', logFd, logFd], env })
    : spawn(argv[0], argv.slice(1), { stdio: ['ignore', logFd, logFd], env });
  closeSync(logFd);
  const p = { name: 'stowage (shipped config)', proc };
  await waitHttp(`${url}/v2/`);
  await new Promise((r) => setTimeout(r, 1000));
  const idleRss = rssNowMiB(proc.pid);
  await pushImage(url, 'bench/pushed', 'latest', webImage);
  execFileSync('curl', ['-sf', '-o', '/dev/null', '-H', accept, `${url}/v2/bench/web/manifests/latest`]); // the cache fill
  const out = { idleRss };
  for (const [key, path] of [
    ['pushedTag', '/v2/bench/pushed/manifests/latest'], ['pushedDigest', `/v2/bench/pushed/manifests/${manifestDigest}`],
    ['cachedTag', '/v2/bench/web/manifests/latest'], ['cachedDigest', `/v2/bench/web/manifests/${manifestDigest}`],
  ]) {
    wrk(`${url}${path}`, { seconds: 2, headers: [accept], cpu: WRK_CPU }); // JIT
    const cpu0 = cpuSeconds(proc.pid);
    const r = wrk(`${url}${path}`, { seconds, headers: [accept], cpu: WRK_CPU });
    out[key] = { ...r, cpuUs: ((cpuSeconds(proc.pid) - cpu0) / (r.rps * seconds)) * 1e6 };
  }
  out.peakRss = peakRssMiB(proc.pid);
  const lines = readFileSync(join(work, `shipped-${port}.log`), 'utf8').split('\n').filter((l) => l.includes('"msg":"request"')).length;
  await stop(p);
  out.logLines = lines;
  return out;
}

// nginx's worker is the master's child: its CPU is what serving costs.
const ngWorker = Number(readFileSync(`/proc/${ng.proc.pid}/task/${ng.proc.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
if (pin) execFileSync('taskset', ['-a', '-p', '-c', String(SERVER_CPU), String(ngWorker)], { stdio: 'ignore' });
wrk(`http://127.0.0.1:${ngPort}/manifest`, { seconds: 2, cpu: WRK_CPU });
const ngCpu0 = cpuSeconds(ngWorker);
const ngManifest = wrk(`http://127.0.0.1:${ngPort}/manifest`, { seconds, cpu: WRK_CPU });
ngManifest.cpuUs = ((cpuSeconds(ngWorker) - ngCpu0) / (ngManifest.rps * seconds)) * 1e6;
const builds = [['stowage', 'dist/cli.js'], ...(baseline ? [[`baseline (${baseline})`, join(baseline, 'dist/cli.js')]] : [])];
const shipped = [];
for (const [label, cli] of builds) shipped.push([label, await shippedConfig(cli)]);
await Promise.all([stop(r2), stop(ng)]);

const shippedTable = [['manifest GET, shipped config, log.level info', 'req/s', 'p99', 'CPU µs / request', '/ nginx (goal >= 0.30)', 'non-2xx']];
shippedTable.push([`nginx, the same ${webImage.manifest.length}-byte file`, ngManifest.rps.toFixed(0), ngManifest.p99, ngManifest.cpuUs.toFixed(0), '1.00', ngManifest.non2xx]);
for (const [label, r] of shipped) {
  for (const [key, what] of [['pushedTag', 'pushed, by tag'], ['pushedDigest', 'pushed, by digest'], ['cachedTag', 'cached (docker.io), by tag'], ['cachedDigest', 'cached (docker.io), by digest']]) {
    shippedTable.push([`${label}: ${what}`, r[key].rps.toFixed(0), r[key].p99, r[key].cpuUs.toFixed(0), ratio(r[key].rps, ngManifest.rps), r[key].non2xx]);
  }
}
const memory = shipped.map(([label, r]) => `${label}: idle RSS after start-up ${r.idleRss.toFixed(0)} MiB, peak ${r.peakRss.toFixed(0)} MiB, ${r.logLines} request lines logged`).join('; ');
report += `
## warm manifest GETs in the shipped config vs nginx (${new Date().toISOString()})
machine: ${machine}, load average ${load()}; wrk -t2 -c16 -d${seconds}s; loopback; nginx one worker, access_log off; stowage's log to a file; ${pin ? `each server on CPU ${SERVER_CPU}, wrk on CPU ${WRK_CPU}` : 'not pinned'}
${table(shippedTable)}
${memory}
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `registry-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
