// Benchmark (issue 9): what TLS and basic auth cost. Manifest and blob GETs over plain HTTP, TLS,
// basic auth (htpasswd, bcrypt) and both, for stowage and registry:2 (Debian docker-registry
// 2.8.2) with the very same config.yml, one server at a time, one run; ratios against each
// server's plain HTTP. Requirement: with basic auth, stowage's warm manifest GETs keep >= 80% of
// their unauthenticated throughput (it caches bcrypt verifications; registry:2 does not).
// Issue 17 adds htpasswd with an `anonymous` access rule over TLS, where stowage challenges with
// Bearer and issues its own tokens: manifest GETs with such a token, with Basic, and with no
// credentials, against the same TLS path without auth (requirement: >= 0.8x each).
// Usage: npm run build && node bench/security.mjs [--seconds 10] [--only stowage] [--log-level warn|info]
//   [--baseline DIR]: stowage's modes again with another checkout's build (DIR/dist/cli.js), same run
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  freePort, makeImage, need, peakRssMiB, pushImage, registry2Config, sha256, start, stop, stowageConfig, table, waitHttp, wrk, STOWAGE_NODE_ARGS } from './lib.mjs';

const arg = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const seconds = Number(arg('--seconds')) || 10;
const only = arg('--only');
const logLevel = arg('--log-level') ?? 'warn';
need(['wrk', 'docker-registry', 'openssl', 'htpasswd']);
const work = mkdtempSync(join(tmpdir(), 'stowage-sec-bench-'));
const MiB = 1024 * 1024;

// A test CA and a server certificate for 127.0.0.1; a bcrypt htpasswd file (htpasswd -B, its default cost).
const ssl = (...args) => execFileSync('openssl', args, { cwd: work, stdio: 'ignore' });
ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-subj', '/CN=bench CA', '-days', '1', '-out', 'ca.pem');
ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-subj', '/CN=127.0.0.1', '-out', 'server.csr');
writeFileSync(join(work, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'server.ext', '-out', 'server.pem');
execFileSync('htpasswd', ['-B', '-b', '-c', join(work, 'htpasswd'), 'bench', 'bench-password'], { stdio: 'ignore' });
const authHeader = `Authorization: Basic ${Buffer.from('bench:bench-password').toString('base64')}`;

// Content: an image with a 64 MiB layer pushed into registry:2; stowage serves a copy of its data directory.
const seedPort = await freePort();
const r2Root = join(work, 'r2');
writeFileSync(join(work, 'seed.yml'), registry2Config(r2Root, seedPort));
const seed = start('registry:2 (seed)', 'docker-registry', ['serve', join(work, 'seed.yml')]);
await waitHttp(`http://127.0.0.1:${seedPort}/v2/`);
const image = makeImage([64 * MiB]);
await pushImage(`http://127.0.0.1:${seedPort}`, 'bench/big', 'latest', image);
await stop(seed);
const blobDigest = sha256(image.layers[0]);
execFileSync('cp', ['-a', r2Root, join(work, 'st')]);

/** send: what each request carries (default: Basic when auth is on). rules: stowage only. */
const MODES = {
  'plain HTTP': { tls: false, auth: false },
  TLS: { tls: true, auth: false },
  'basic auth': { tls: false, auth: true },
  'TLS + basic auth': { tls: true, auth: true },
  'TLS + anonymous rule, user token': { tls: true, auth: true, rules: true, send: 'user token' },
  'TLS + anonymous rule, anonymous token': { tls: true, auth: true, rules: true, send: 'anonymous token' },
  'TLS + anonymous rule, Basic': { tls: true, auth: true, rules: true, send: 'basic' },
  'TLS + anonymous rule, no credentials': { tls: true, auth: true, rules: true, send: 'none' },
};
const baseline = arg('--baseline');
const SERVERS = ['stowage', ...(baseline ? ['baseline'] : []), 'registry:2'].filter((s) => !only || s === only || (s === 'baseline' && only === 'stowage'));
const isStowage = (server) => server !== 'registry:2';
const modesOf = (server) => Object.entries(MODES).filter(([, m]) => isStowage(server) || !m.rules);

function extraConfig({ tls, auth, rules }) {
  let extra = '';
  if (tls) extra += `  tls:\n    certificate: ${join(work, 'server.pem')}\n    key: ${join(work, 'server.key')}\n`;
  if (auth) extra += `auth:\n  htpasswd:\n    realm: bench\n    path: ${join(work, 'htpasswd')}\n`;
  if (rules) extra += 'access:\n  - {repository: "**", pull: [anonymous]}\n';
  return extra;
}

/** A token from stowage's /auth/token, for the user or for nobody. */
function fetchToken(url, user) {
  const body = execFileSync('curl', ['-sf', '--cacert', join(work, 'ca.pem'), ...(user ? ['-u', 'bench:bench-password'] : []),
    `${url}/auth/token?service=bench&scope=repository:bench/big:pull`], { encoding: 'utf8' });
  return JSON.parse(body).token;
}

function headersFor(flags, url) {
  const send = flags.send ?? (flags.auth ? 'basic' : 'none');
  if (send === 'basic') return [authHeader];
  if (send === 'user token' || send === 'anonymous token') return [`Authorization: Bearer ${fetchToken(url, send === 'user token')}`];
  return [];
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const results = {};
for (const server of SERVERS) {
  results[server] = {};
  for (const [mode, flags] of modesOf(server)) {
    const port = await freePort();
    const file = join(work, `${server.replace(':', '')}-${port}.yml`);
    const root = isStowage(server) ? join(work, 'st') : r2Root;
    const yaml = isStowage(server) ? stowageConfig(root, port, extraConfig(flags)).replace('level: warn', `level: ${logLevel}`) : registry2Config(root, port, extraConfig(flags));
    writeFileSync(file, yaml);
    const proc = isStowage(server)
      ? start(server, process.execPath, [...STOWAGE_NODE_ARGS, server === 'baseline' ? join(baseline, 'dist/cli.js') : 'dist/cli.js', 'serve', file])
      : start('registry:2', 'docker-registry', ['serve', file]);
    const url = `${flags.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    process.env.NODE_EXTRA_CA_CERTS = join(work, 'ca.pem');
    await waitHttp(`http://127.0.0.1:${port}/v2/`).catch(() => undefined);
    await waitForTls(url);
    const headers = headersFor(flags, url);
    const check = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(work, 'ca.pem'), ...headers.flatMap((h) => ['-H', h]), `${url}/v2/bench/big/manifests/latest`, '-H', 'Accept: application/vnd.oci.image.manifest.v1+json'], { encoding: 'utf8' });
    if (check !== '200') throw new Error(`${server} ${mode}: manifest GET answered ${check}\n${proc.output().slice(-2000)}`);
    wrk(`${url}/v2/bench/big/blobs/${blobDigest}`, { seconds: 2, headers }); // page cache, JIT, bcrypt cache
    const measure = (path, extraHeaders) => {
      const before = cpuSeconds(proc.proc.pid);
      const r = wrk(`${url}${path}`, { seconds, headers: [...headers, ...extraHeaders] });
      return { ...r, cpu: cpuSeconds(proc.proc.pid) - before };
    };
    results[server][mode] = {
      blob: measure(`/v2/bench/big/blobs/${blobDigest}`, []),
      manifest: measure('/v2/bench/big/manifests/latest', ['Accept: application/vnd.oci.image.manifest.v1+json']),
      rss: peakRssMiB(proc.proc.pid),
    };
    await stop(proc);
  }
}

async function waitForTls(url) {
  for (let i = 0; i < 200; i++) {
    try {
      execFileSync('curl', ['-s', '-o', '/dev/null', '--cacert', join(work, 'ca.pem'), `${url}/v2/`], { stdio: 'ignore' });
      return;
    } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  throw new Error(`${url} did not answer`);
}

const gbs = (b) => (b / 1024 ** 3).toFixed(2);
const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : '-');
const cpuPer = (r) => r.manifest.cpu / (r.manifest.rps * seconds);
const rows = [['server', 'mode', 'blob GET 64 MiB (GiB/s)', 'vs plain', 'manifest GET (req/s)', 'vs plain', 'vs TLS', 'manifest p99', 'CPU µs / manifest', 'non-2xx']];
for (const server of SERVERS) {
  const plain = results[server]['plain HTTP'];
  const tls = results[server].TLS;
  for (const [mode, flags] of modesOf(server)) {
    const r = results[server][mode];
    rows.push([server, mode, gbs(r.blob.bytesPerSec), ratio(r.blob.bytesPerSec, plain.blob.bytesPerSec), r.manifest.rps.toFixed(0),
      ratio(r.manifest.rps, plain.manifest.rps), flags.tls ? ratio(r.manifest.rps, tls.manifest.rps) : '-', r.manifest.p99,
      (cpuPer(r) * 1e6).toFixed(0), r.blob.non2xx + r.manifest.non2xx]);
  }
}
const side = [['mode', 'blob stowage / registry:2', 'manifest stowage / registry:2']];
if (SERVERS.includes('stowage') && SERVERS.includes('registry:2')) {
  for (const [mode] of modesOf('registry:2')) {
    const s = results.stowage[mode], r = results['registry:2'][mode];
    side.push([mode, ratio(s.blob.bytesPerSec, r.blob.bytesPerSec), ratio(s.manifest.rps, r.manifest.rps)]);
  }
}
/** req/s kept against a reference mode, and the same by CPU per request (steadier on a shared machine). */
const kept = (mode, reference, server = 'stowage') => {
  const r = results[server]?.[mode], ref = results[server]?.[reference];
  if (!r || !ref) return `${mode}: not measured`;
  const byRps = r.manifest.rps / ref.manifest.rps, byCpu = cpuPer(ref) / cpuPer(r);
  return `${server === 'stowage' ? '' : `${server}: `}${mode} / ${reference}: ${byRps.toFixed(2)}x req/s, ${byCpu.toFixed(2)}x by CPU per request`;
};
const goals = SERVERS.filter(isStowage).flatMap((server) => [
  kept('basic auth', 'plain HTTP', server),
  kept('TLS', 'plain HTTP', server) + ' (what TLS itself costs)',
  ...['user token', 'anonymous token', 'Basic', 'no credentials'].map((s) => `${kept(`TLS + anonymous rule, ${s}`, 'TLS', server)} (requirement for tokens and Basic: >= 0.8x)`),
]);
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const report = `## TLS and auth: stowage and registry:2 (${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}, load average at the end ${load}; wrk -t2 -c16 -d${seconds}s; loopback; HTTP/1.1; one server at a time; stowage log.level ${logLevel}${baseline ? `; baseline = ${baseline}` : ''}
${table(rows)}
${side.length > 1 ? `\n${table(side)}\n` : ''}
${goals.map((g) => `- ${g}`).join('\n')}
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `security-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
