// Shared helpers for the benchmarks: processes, ports, content, wrk parsing. Plain ESM so the
// benchmarks run with `node` alone after `npm run build`.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The node flags stowage ships with (package.json's start script, which the Dockerfile and the
 * systemd unit repeat): every bench runs stowage with them, as it runs in production.
 */
export const STOWAGE_NODE_ARGS = (() => {
  const start = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts.start;
  const words = start.split(/\s+/);
  return words.slice(1, words.indexOf('dist/cli.js')).filter((w) => w.startsWith('--'));
})();

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export function need(bins) {
  const missing = bins.filter((b) => { try { execFileSync('which', [b], { stdio: 'ignore' }); return false; } catch { return true; } });
  if (missing.length) {
    console.error(`bench: missing ${missing.join(', ')} (apt-get install -y wrk hyperfine nginx-light docker-registry skopeo)`);
    process.exit(2);
  }
}

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

export async function waitHttp(url, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try { const r = await fetch(url); await r.arrayBuffer(); return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timeout waiting for ${url}`);
    await sleep(100);
  }
}

export function start(name, cmd, args, opts = {}) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const out = [];
  p.stdout.on('data', (d) => out.push(d));
  p.stderr.on('data', (d) => out.push(d));
  p.on('exit', (code, sig) => { if (code && code !== 0) console.error(`${name} exited ${code} ${sig ?? ''}\n${Buffer.concat(out).toString().slice(-2000)}`); });
  return { name, proc: p, output: () => Buffer.concat(out).toString() };
}

/** CPU seconds a process has used so far (utime + stime, in USER_HZ = 100 ticks). */
export function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU-seconds once the process has gone quiet: a cache's work for a pull does not end with the
 * client's last byte (stowage commits after it; registry:2 stores in a background second fetch).
 */
export async function settledCpuSeconds(pid) {
  let last = cpuSeconds(pid);
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const now = cpuSeconds(pid);
    if (now - last < 0.02) return now;
    last = now;
  }
  return last;
}

/** Peak resident set size (VmHWM) of a process and its children, in MiB. */
export function peakRssMiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch { return NaN; }
}

export function stop(p) {
  return new Promise((resolve) => {
    if (p.proc.exitCode !== null) return resolve();
    p.proc.once('exit', () => resolve());
    p.proc.kill('SIGTERM');
    setTimeout(() => p.proc.kill('SIGKILL'), 5000).unref();
  });
}

/** Runs wrk and returns {rps, bytesPerSec}. */
export function wrk(url, { threads = 2, connections = 16, seconds = 10, headers = [], cpu } = {}) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency'];
  for (const h of headers) args.push('-H', h);
  args.push(url);
  // cpu: run wrk on that CPU only (taskset), for a server pinned to another.
  const out = cpu === undefined ? execFileSync('wrk', args, { encoding: 'utf8' }) : execFileSync('taskset', ['-c', String(cpu), 'wrk', ...args], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const tm = /Transfer\/sec:\s+([\d.]+)([KMG]?B)/.exec(out);
  const unit = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[tm?.[2] ?? 'B'];
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const p99 = /99%\s+([\d.]+\w+)/.exec(out)?.[1];
  return { rps, bytesPerSec: Number(tm?.[1] ?? NaN) * unit, non2xx, p99, raw: out };
}

/** Pushes a blob: POST then PUT ?digest= (registry:2 answers a monolithic POST with 202). */
export async function pushBlob(base, repo, bytes) {
  const digest = sha256(bytes);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  const location = new URL(post.headers.get('location'), base);
  location.searchParams.set('digest', digest);
  const r = await fetch(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  if (r.status !== 201) throw new Error(`push blob to ${base}: ${r.status} ${await r.text()}`);
  return digest;
}

export async function pushManifest(base, repo, tag, manifest, type = 'application/vnd.oci.image.manifest.v1+json') {
  const r = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': type } });
  if (r.status !== 201) throw new Error(`push manifest to ${base}: ${r.status} ${await r.text()}`);
}

/** An image (config + layers of random bytes) as in-memory parts. */
export function makeImage(layerSizes) {
  const layers = layerSizes.map((n) => randomBytes(n));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(sha256) } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
  }));
  return { layers, config, manifest };
}

export async function pushImage(base, repo, tag, image) {
  for (const l of image.layers) await pushBlob(base, repo, l);
  await pushBlob(base, repo, image.config);
  await pushManifest(base, repo, tag, image.manifest);
}

/** Writes an image as an OCI layout directory, for `skopeo copy oci:DIR:TAG`. */
export function writeOciLayout(dir, tag, image) {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b) => writeFileSync(join(dir, 'blobs', 'sha256', sha256(b).slice(7)), b);
  for (const l of image.layers) put(l);
  put(image.config);
  put(image.manifest);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(image.manifest), size: image.manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
}

/** One config.yml for both servers: stowage reads registry:2's format. */
function configYaml(root, port, log, extra) {
  return `version: 0.1
log:
${log}
storage:
  filesystem:
    rootdirectory: ${root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${extra}`;
}

export const registry2Config = (root, port, extra = '') => configYaml(root, port, '  level: error\n  accesslog:\n    disabled: true', extra);
export const stowageConfig = (root, port, extra = '') => configYaml(root, port, '  level: warn', extra);

export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

let cacheInstance = 0;
/**
 * A pull-through cache in front of the upstream at upPort, in a fresh directory under work:
 * `kind` 'stowage' (node dist/cli.js, as production runs it) or 'r2' (registry:2's proxy mode);
 * `cli` another build of stowage (a baseline checkout's dist/cli.js), `nodeArgs` flags for node.
 */
export async function startCache(kind, work, upPort, { cli = 'dist/cli.js', nodeArgs = STOWAGE_NODE_ARGS } = {}) {
  const port = await freePort();
  const root = join(work, `${kind}-${++cacheInstance}`);
  const file = join(work, `${kind}-${cacheInstance}.yml`);
  if (kind === 'stowage') {
    writeFileSync(file, stowageConfig(root, port, `upstreams:\n  - {name: upstream.test, url: "http://127.0.0.1:${upPort}"}\ndefault_upstream: upstream.test\n`));
    const p = start('stowage', process.execPath, [...nodeArgs, cli, 'serve', file]);
    await waitHttp(`http://127.0.0.1:${port}/v2/`);
    return { ...p, port, root };
  }
  writeFileSync(file, registry2Config(root, port, `proxy:\n  remoteurl: http://127.0.0.1:${upPort}\n`));
  const p = start('registry:2 proxy', 'docker-registry', ['serve', file]);
  await waitHttp(`http://127.0.0.1:${port}/v2/`);
  return { ...p, port, root };
}
