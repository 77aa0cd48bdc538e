// Benchmark (issue 17): HTTP/2 or HTTP/1.1 to an upstream across the WAN stand-in? nginx serves
// the ten layers of bench/wan.mjs's image over TLS with HTTP/2 offered, behind bench/wan-relay.mjs
// (RTT 50 ms, 200 Mbit/s per connection); undici (stowage's HTTP client) fetches one small file
// (the manifest), then all ten layers at once, as a pull with layer prefetch would, with
// `allowH2` off (a connection per layer) and on (one connection, ten streams; undici's default
// flow-control windows, then windows of a bandwidth-delay product and more), from a new Agent
// each round (handshakes included).
// Usage: node bench/wan-h2.mjs [--rounds 3] [--rtt 50] [--rate 200mbit]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { freePort, start, stop, table } from './lib.mjs';
import { parseRate, startRelay } from './wan-relay.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : fallback; };
const rounds = Number(opt('--rounds', 3));
const rttMs = Number(opt('--rtt', 50));
const rateBps = parseRate(opt('--rate', '200mbit'));
const MiB = 1024 * 1024;
const SIZES = [60, 16, 10, 6, 3, 2, 1, 0.5, 0.25, 0.05].map((m) => Math.round(m * MiB));

const work = mkdtempSync(join(tmpdir(), 'stowage-h2-bench-'));
mkdirSync(join(work, 'www'));
mkdirSync(join(work, 'nginx'));
SIZES.forEach((n, i) => writeFileSync(join(work, 'www', `layer${i}`), randomBytes(n)));
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
  '-subj', '/CN=127.0.0.1', '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem')], { stdio: 'ignore' });
const port = await freePort();
writeFileSync(join(work, 'nginx.conf'), `daemon off; user root; worker_processes 1; pid ${work}/nginx.pid; error_log ${work}/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; keepalive_timeout 75s;
  client_body_temp_path ${work}/nginx; proxy_temp_path ${work}/nginx; fastcgi_temp_path ${work}/nginx; uwsgi_temp_path ${work}/nginx; scgi_temp_path ${work}/nginx;
  server { listen 127.0.0.1:${port} ssl http2; ssl_certificate ${work}/cert.pem; ssl_certificate_key ${work}/key.pem; root ${work}/www; } }`);
const nginx = start('nginx', 'nginx', ['-c', join(work, 'nginx.conf'), '-p', work]);
// The relay in this process: the fetches are asynchronous too, and it is all this process does.
const relay = await startRelay({ target: `127.0.0.1:${port}`, rttMs, rateBps });
await new Promise((r) => setTimeout(r, 500));

async function fetchAll(agent, indexes) {
  await Promise.all(indexes.map(async (i) => {
    const res = await request(`https://127.0.0.1:${relay.port}/layer${i}`, { dispatcher: agent });
    let got = 0;
    for await (const c of res.body) got += c.length;
    if (got !== SIZES[i]) throw new Error(`layer${i}: ${got} of ${SIZES[i]} bytes`);
  }));
}

async function pull(options) {
  const agent = new Agent({ connections: 16, connect: { rejectUnauthorized: false }, ...options });
  const before = relay.stats().connections;
  const t0 = performance.now();
  await fetchAll(agent, [SIZES.length - 1]); // the manifest's stand-in: the connection is up (and h2 known) before the layers
  await fetchAll(agent, SIZES.map((_, i) => i));
  const s = (performance.now() - t0) / 1000;
  await agent.close();
  return { s, connections: relay.stats().connections - before };
}

const VARIANTS = {
  'HTTP/1.1, a connection per layer': { allowH2: false },
  'HTTP/2, undici default windows (256 KiB stream, 512 KiB connection)': { allowH2: true },
  'HTTP/2, windows 2 MiB stream, 16 MiB connection': { allowH2: true, initialWindowSize: 2 * MiB, connectionWindowSize: 16 * MiB },
  // undici's pool opens a connection per busy request even with HTTP/2; one connection multiplexes.
  'HTTP/2, same windows, one connection (ten streams)': { allowH2: true, initialWindowSize: 2 * MiB, connectionWindowSize: 16 * MiB, connections: 1 },
};
const results = Object.fromEntries(Object.keys(VARIANTS).map((k) => [k, []]));
for (let i = 0; i < rounds; i++) for (const [name, options] of Object.entries(VARIANTS)) results[name].push(await pull(options));
await relay.close();
await stop(nginx);
rmSync(work, { recursive: true, force: true });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const total = SIZES.reduce((a, b) => a + b, 0);
const row = (name, rs) => [name, median(rs.map((r) => r.s)).toFixed(2), rs.map((r) => r.s.toFixed(2)).join(', '), String(median(rs.map((r) => r.connections))),
  (total / MiB / median(rs.map((r) => r.s))).toFixed(1)];
console.log(`## HTTP/1.1 vs HTTP/2 to an upstream across the WAN stand-in (bench/wan-h2.mjs, ${new Date().toISOString()})
${cpus().length} cores, node ${process.version}, RTT ${rttMs} ms, ${rateBps / 1e6} Mbit/s per connection; ten layers, ${(total / MiB).toFixed(1)} MiB, a small file, then the ten layers at once, over TLS (nginx); new agent each round
${table([['undici', 'median (s)', 'rounds (s)', 'connections', 'MiB/s'], ...Object.entries(results).map(([name, rs]) => row(name, rs))])}
`);
