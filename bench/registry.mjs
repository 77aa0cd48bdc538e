// Benchmark (issue 2): stowage vs registry:2 (Debian docker-registry 2.8.2) vs nginx, same content,
// one run, side by side. Usage: npm run build && node bench/registry.mjs [--seconds 10]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  freePort, makeImage, need, peakRssMiB, pushImage, registry2Config, sha256, start, stop, stowageConfig,
  table, waitHttp, wrk, writeOciLayout,
} from './lib.mjs';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 10;
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
const blobDigest = sha256(image.layers[0]);
execFileSync('cp', ['-a', r2Root, join(work, 'st')]);

const stPort = await freePort();
writeFileSync(join(work, 'st.yml'), stowageConfig(join(work, 'st'), stPort));
const st = start('stowage', process.execPath, ['dist/cli.js', 'serve', join(work, 'st.yml')]);
const stUrl = `http://127.0.0.1:${stPort}`;
await waitHttp(`${stUrl}/v2/`);

// nginx serving the very same blob file with sendfile: the ceiling for raw file serving.
const ngPort = await freePort();
const hex = blobDigest.slice(7);
const blobFile = join(r2Root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
mkdirSync(join(work, 'nginx'), { recursive: true });
writeFileSync(join(work, 'nginx.conf'), `daemon off; user root; worker_processes 1; pid ${work}/nginx.pid; error_log ${work}/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path ${work}/nginx; proxy_temp_path ${work}/nginx; fastcgi_temp_path ${work}/nginx; uwsgi_temp_path ${work}/nginx; scgi_temp_path ${work}/nginx;
  server { listen 127.0.0.1:${ngPort}; location = /blob { alias ${blobFile}; default_type application/octet-stream; } } }`);
const ng = start('nginx', 'nginx', ['-c', join(work, 'nginx.conf'), '-p', work]);
await waitHttp(`http://127.0.0.1:${ngPort}/blob`);

const blobPath = `/v2/bench/big/blobs/${blobDigest}`;
const accept = 'Accept: application/vnd.oci.image.manifest.v1+json';
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
await Promise.all([stop(st), stop(r2), stop(ng)]);

const gbs = (b) => (b / 1024 ** 3).toFixed(2);
const ratio = (a, b) => (a / b).toFixed(2);
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
const report = `## stowage vs registry:2 vs nginx (${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}; wrk -t2 -c16 -d${seconds}s; loopback
${table(rows)}
non-2xx responses during wrk: ${errors}
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `registry-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
