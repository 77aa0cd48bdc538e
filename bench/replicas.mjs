// Benchmark (issue 16): the warm path of replicas, in one run, through nginx (round robin):
//   1 replica on SQLite | 1 replica on PostgreSQL | 3 replicas on PostgreSQL
// wrk -t2 -c16 on a manifest GET by tag (a pushed repository, and a repository cached from a
// registry:2 upstream) and a warm blob GET; req/s, p99, and CPU-seconds of stowage, PostgreSQL
// and nginx per 1,000 requests. On 2 cores three replicas cannot be faster than one; what must
// hold is PostgreSQL's cost per request against SQLite's.
//   npm run build && node bench/replicas.mjs [seconds]
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cpuSeconds, freePort, makeImage, need, peakRssMiB, pushImage, registry2Config, sha256, sleep, start, stop, table, waitHttp, wrk, STOWAGE_NODE_ARGS } from './lib.mjs';

need(['wrk', 'nginx', 'docker-registry']);
const PG_BIN = '/usr/lib/postgresql/15/bin';
const seconds = Number(process.argv[2] ?? 8);
const work = mkdtempSync(join(tmpdir(), 'stowage-bench-replicas-'));
chmodSync(work, 0o711);
const procs = [];
process.on('exit', () => { for (const p of procs) try { p.proc.kill('SIGKILL'); } catch { /* gone */ } rmSync(work, { recursive: true, force: true }); });

/** A private PostgreSQL (as user postgres when root), fsync off, like test/helpers/postgres.ts. */
async function startPostgres() {
  const data = join(work, 'pg');
  const port = await freePort();
  const asPg = process.getuid() === 0 ? ['--reuid=postgres', '--regid=postgres', '--clear-groups'] : [];
  mkdirSync(join(work, 'pgsock'));
  mkdirSync(data, { mode: 0o700 });
  if (process.getuid() === 0) execFileSync('chown', ['postgres', join(work, 'pgsock'), data]);
  execFileSync('setpriv', [...asPg, join(PG_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'], { stdio: 'ignore' });
  const pg = start('postgres', 'setpriv', [...asPg, join(PG_BIN, 'postgres'), '-D', data, '-p', String(port), '-k', join(work, 'pgsock'),
    '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200']);
  procs.push(pg);
  for (let i = 0; i < 100; i++) {
    try { execFileSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', 'select 1'], { stdio: 'ignore' }); break; } catch { await sleep(200); }
  }
  return { port, pid: pg.proc.pid };
}

/** CPU-seconds of a process and its children (the postmaster and its backends, nginx and its worker). */
function treeCpu(rootPid) {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.split(') ')[1].split(' ')[1]);
      if (Number(pid) === rootPid || ppid === rootPid) total += cpuSeconds(Number(pid));
    } catch { /* exited */ }
  }
  return total;
}

async function startNginx(backends) {
  const port = await freePort();
  const dir = join(work, `nginx-${port}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'nginx.conf'), `daemon off; ${process.getuid() === 0 ? 'user root;' : ''} worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  upstream stowage { ${backends.map((b) => `server 127.0.0.1:${b};`).join(' ')} keepalive 64; }
  server { listen 127.0.0.1:${port}; client_max_body_size 0;
    location / { proxy_pass http://stowage; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $http_host;
      proxy_buffering off; proxy_request_buffering off; } } }`);
  const ng = start('nginx', 'nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir]);
  procs.push(ng);
  await waitHttp(`http://127.0.0.1:${port}/`).catch(() => undefined);
  return { port, pid: ng.proc.pid, ng };
}

async function startReplica(name, root, extra) {
  const port = await freePort();
  const file = join(work, `${name}-${port}.yml`);
  writeFileSync(file, `version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: ${root}}, delete: {enabled: true}}
http: {addr: 127.0.0.1:${port}}
upstreams: [{name: upstream.test, url: "http://127.0.0.1:${upstreamPort}", tag_ttl: 1h}]
${extra}`);
  const p = start(name, process.execPath, [...STOWAGE_NODE_ARGS, 'dist/cli.js', 'serve', file]);
  procs.push(p);
  await waitHttp(`http://127.0.0.1:${port}/v2/`, 60_000);
  return { ...p, port };
}

// One upstream (registry:2) and one image: a small manifest and a 16 MiB layer.
const upstreamPort = await freePort();
writeFileSync(join(work, 'r2.yml'), registry2Config(join(work, 'r2'), upstreamPort));
procs.push(start('registry:2', 'docker-registry', ['serve', join(work, 'r2.yml')]));
await waitHttp(`http://127.0.0.1:${upstreamPort}/v2/`);
const image = makeImage([16 * 1024 * 1024]);
const layerDigest = sha256(image.layers[0]);
await pushImage(`http://127.0.0.1:${upstreamPort}`, 'library/cached', '1', image);
const pg = await startPostgres();
const ACCEPT = 'Accept: application/vnd.oci.image.manifest.v1+json';

async function measure(label, replicas) {
  const lb = await startNginx(replicas.map((r) => r.port));
  const base = `http://127.0.0.1:${lb.port}`;
  await pushImage(base, 'team/app', '1', image);
  // Warm: the cached tag and blob fetched once (every replica then has it in its caches).
  for (let i = 0; i < replicas.length * 2; i++) {
    await (await fetch(`${base}/v2/upstream.test/library/cached/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer();
    await (await fetch(`${base}/v2/team/app/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer();
  }
  await (await fetch(`${base}/v2/upstream.test/library/cached/blobs/${layerDigest}`)).arrayBuffer();
  const row = { label };
  for (const [key, path] of [
    ['local', '/v2/team/app/manifests/1'],
    ['cached', '/v2/upstream.test/library/cached/manifests/1'],
    ['blob', `/v2/team/app/blobs/${layerDigest}`],
  ]) {
    const cpu0 = replicas.reduce((s, r) => s + cpuSeconds(r.proc.pid), 0);
    const pg0 = treeCpu(pg.pid);
    const ng0 = treeCpu(lb.pid);
    const w = wrk(`${base}${path}`, { seconds, headers: key === 'blob' ? [] : [ACCEPT] });
    const requests = w.rps * seconds;
    row[key] = {
      rps: w.rps, p99: w.p99, gibps: w.bytesPerSec / 2 ** 30, non2xx: w.non2xx,
      stowageMsPerK: ((replicas.reduce((s, r) => s + cpuSeconds(r.proc.pid), 0) - cpu0) * 1e6) / requests,
      pgMsPerK: ((treeCpu(pg.pid) - pg0) * 1e6) / requests,
      nginxMsPerK: ((treeCpu(lb.pid) - ng0) * 1e6) / requests,
    };
  }
  row.rss = Math.max(...replicas.map((r) => peakRssMiB(r.proc.pid)));
  await stop(lb.ng);
  for (const r of replicas) await stop(r);
  return row;
}

const db = (name) => {
  execFileSync('psql', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-c', `CREATE DATABASE ${name}`], { stdio: 'ignore' });
  return `database: {enabled: true, dsn: "postgres://postgres@127.0.0.1:${pg.port}/${name}", sslmode: disable}\n`;
};
const rows = [];
rows.push(await measure('1 replica, SQLite', [await startReplica('sqlite', join(work, 'fs-sqlite'), '')]));
const one = db('one');
rows.push(await measure('1 replica, PostgreSQL', [await startReplica('pg1', join(work, 'fs-pg1'), one)]));
const three = db('three');
const first = await startReplica('pg3-a', join(work, 'fs-pg3'), three);
rows.push(await measure('3 replicas, PostgreSQL', [first, ...(await Promise.all([startReplica('pg3-b', join(work, 'fs-pg3'), three), startReplica('pg3-c', join(work, 'fs-pg3'), three)]))]));

const f = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const cost = (c) => c.stowageMsPerK + c.pgMsPerK;
const base = rows[0];
const lines = [['through nginx, wrk -t2 -c16', ...rows.map((r) => r.label)]];
for (const [key, what] of [['local', 'manifest GET by tag, pushed'], ['cached', 'manifest GET by tag, cached']]) {
  lines.push([`${what}: req/s (p99)`, ...rows.map((r) => `${f(r[key].rps)} (${r[key].p99})`)]);
  lines.push([`  CPU-ms per 1,000: stowage + PostgreSQL (nginx)`, ...rows.map((r) => `${f(r[key].stowageMsPerK)} + ${f(r[key].pgMsPerK)} (${f(r[key].nginxMsPerK)})`)]);
  lines.push([`  cost per request vs SQLite`, ...rows.map((r) => f(cost(r[key]) / cost(base[key]), 2))]);
}
lines.push(['blob GET 16 MiB: GiB/s', ...rows.map((r) => f(r.blob.gibps, 2))]);
lines.push(['peak RSS of a replica, MiB', ...rows.map((r) => f(r.rss))]);
const errors = rows.flatMap((r) => ['local', 'cached', 'blob'].map((k) => r[k].non2xx)).reduce((a, b) => a + b, 0);
const report = `## replicas (bench/replicas.mjs, ${new Date().toISOString()}, ${seconds} s per row)\n\n${table(lines)}\n\nnon-2xx responses: ${errors}\n`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/replicas.md', report);
process.exit(0);
