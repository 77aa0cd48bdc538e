// Benchmark (issue 11): stowage and Debian's registry:2 side by side on the same object store,
// OpenStack Swift's S3 API on loopback (one bucket, a rootdirectory per server), in one run:
//   - push of a 512 MiB image (4 x 128 MiB layers) with skopeo;
//   - warm blob GET throughput of a 64 MiB blob, 8 concurrent clients that follow redirects:
//     stowage serving the bytes, stowage redirecting (storage.redirect), registry:2 redirecting
//     (its default), registry:2 serving the bytes (redirect disabled), and the presigned URL
//     straight from Swift (the ceiling);
//   - cold pull through the cache (skopeo) of a 256 MiB image from an upstream registry:2.
// Usage: npm run build && node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/object-store.ts
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { startSwift, SWIFT_KEY, SWIFT_REGION, SWIFT_USER } from '../test/helpers/swift.js';
// @ts-expect-error plain JS helpers shared with the other benchmarks
import { freePort, makeImage, need, peakRssMiB, pushImage, sha256, start, stop, table, waitHttp, writeOciLayout, STOWAGE_NODE_ARGS } from './lib.mjs';

type Proc = { name: string; proc: { pid: number }; output(): string };
need(['docker-registry', 'skopeo', 'swift-proxy-server', 'memcached']);
const MiB = 1024 * 1024;
const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 10;
const work = mkdtempSync(join(tmpdir(), 'stowage-os-bench-'));
const swift = await startSwift();
const BUCKET = 'stowage-bench';
await swift.createContainer(BUCKET);

const s3 = (root: string) => ({
  accesskey: SWIFT_USER, secretkey: SWIFT_KEY, region: SWIFT_REGION, regionendpoint: swift.url,
  forcepathstyle: true, bucket: BUCKET, rootdirectory: root,
});
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks of 10 ms
};

async function server(kind: 'stowage' | 'registry:2', name: string, extra: Record<string, unknown>): Promise<Proc & { url: string; port: number }> {
  const port = await freePort();
  const file = join(work, `${name}.yml`);
  const config = {
    version: 0.1,
    log: kind === 'stowage' ? { level: 'warn' } : { level: 'error', accesslog: { disabled: true } },
    http: { addr: `127.0.0.1:${port}` },
    ...extra,
  };
  writeFileSync(file, stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  // registry:2 panics at start when AWS_CA_BUNDLE is set (LoadCustomCABundleError).
  delete env.AWS_CA_BUNDLE;
  const p: Proc = kind === 'stowage'
    ? start(name, process.execPath, [...STOWAGE_NODE_ARGS, 'dist/cli.js', 'serve', file], { env })
    : start(name, 'docker-registry', ['serve', file], { env });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/v2/`);
  return { ...p, url, port };
}

const servers = {
  stowage: await server('stowage', 'stowage', { storage: { s3: s3('/st'), delete: { enabled: true } } }),
  'stowage+redirect': await server('stowage', 'stowage-redirect', { storage: { s3: s3('/st'), redirect: { disable: false } } }),
  'registry:2': await server('registry:2', 'r2', { storage: { s3: s3('/r2'), delete: { enabled: true } } }),
  'registry:2 no redirect': await server('registry:2', 'r2-noredirect', { storage: { s3: s3('/r2'), redirect: { disable: true } } }),
};
const cpuBefore = { stowage: cpuSeconds(servers.stowage.proc.pid), 'registry:2': cpuSeconds(servers['registry:2'].proc.pid) };

// 1. push 512 MiB with skopeo, twice each into fresh repositories
const layout = join(work, 'layout');
writeOciLayout(layout, 'v1', makeImage([128 * MiB, 128 * MiB, 128 * MiB, 128 * MiB]));
const pushTimes: Record<string, number[]> = { stowage: [], 'registry:2': [] };
for (let run = 0; run < 2; run++) {
  for (const name of ['stowage', 'registry:2'] as const) {
    const t0 = process.hrtime.bigint();
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://127.0.0.1:${servers[name].port}/push/run${run}:v1`]);
    pushTimes[name]!.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
}
const cpuPush = {
  stowage: cpuSeconds(servers.stowage.proc.pid) - cpuBefore.stowage,
  'registry:2': cpuSeconds(servers['registry:2'].proc.pid) - cpuBefore['registry:2'],
};
rmSync(layout, { recursive: true, force: true });

// 2. warm blob GETs of one 64 MiB blob, following redirects
const image = makeImage([64 * MiB]);
await pushImage(servers.stowage.url, 'bench/big', 'latest', image);
await pushImage(servers['registry:2'].url, 'bench/big', 'latest', image);
const blobPath = `/v2/bench/big/blobs/${sha256(image.layers[0])}`;
const dispatcher = new Agent({ connections: 16 });
async function getFollowing(url: string): Promise<number> {
  let target = url;
  for (let hop = 0; hop < 3; hop++) {
    const r = await request(target, { dispatcher });
    if (r.statusCode >= 300 && r.statusCode < 400) {
      await r.body.dump();
      target = new URL(String(r.headers.location), target).toString();
      continue;
    }
    if (r.statusCode !== 200) throw new Error(`${target}: ${r.statusCode}`);
    let n = 0;
    for await (const c of r.body) n += (c as Buffer).length;
    return n;
  }
  throw new Error('too many redirects');
}
async function throughput(url: string, clients = 8): Promise<{ gibs: number; requests: number }> {
  await getFollowing(url);
  const end = Date.now() + seconds * 1000;
  let bytes = 0;
  let requests = 0;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (Date.now() < end) {
      const n = await getFollowing(url);
      bytes += n;
      requests++;
    }
  }));
  return { gibs: bytes / 1024 ** 3 / ((Date.now() - t0) / 1000), requests };
}
const presigned = await (async () => {
  const r = await request(`${servers['stowage+redirect'].url}${blobPath}`, { dispatcher });
  await r.body.dump();
  return String(r.headers.location);
})();
const warm: Record<string, { gibs: number; requests: number; cpu: number }> = {};
for (const [name, url] of [
  ['stowage (serves bytes)', `${servers.stowage.url}${blobPath}`],
  ['stowage (redirect)', `${servers['stowage+redirect'].url}${blobPath}`],
  ['registry:2 (redirect, its default)', `${servers['registry:2'].url}${blobPath}`],
  ['registry:2 (serves bytes)', `${servers['registry:2 no redirect'].url}${blobPath}`],
  ['Swift presigned URL, direct', presigned],
] as const) {
  const pid = name.startsWith('stowage (serves') ? servers.stowage.proc.pid : name.startsWith('stowage') ? servers['stowage+redirect'].proc.pid
    : name.includes('redirect, its') ? servers['registry:2'].proc.pid : name.startsWith('registry') ? servers['registry:2 no redirect'].proc.pid : undefined;
  const c0 = pid ? cpuSeconds(pid) : 0;
  const r = await throughput(url);
  warm[name] = { ...r, cpu: pid ? cpuSeconds(pid) - c0 : NaN };
}

// 3. cold pull through the cache: an upstream registry:2 (filesystem) with a 256 MiB image
const upstream = await server('registry:2', 'upstream', { storage: { filesystem: { rootdirectory: join(work, 'up') } } });
const upLayout = join(work, 'up-layout');
writeOciLayout(upLayout, 'v1', makeImage([64 * MiB, 64 * MiB, 64 * MiB, 64 * MiB]));
execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--preserve-digests', `oci:${upLayout}:v1`, `docker://127.0.0.1:${upstream.port}/library/app:v1`]);
const caches = {
  stowage: await server('stowage', 'stowage-cache', {
    storage: { s3: s3('/st-cache') }, upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io',
  }),
  'registry:2': await server('registry:2', 'r2-cache', { storage: { s3: s3('/r2-cache') }, proxy: { remoteurl: upstream.url } }),
};
const cold: Record<string, string> = {};
for (const [name, c] of Object.entries(caches)) {
  const t0 = process.hrtime.bigint();
  try {
    execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${c.port}/library/app:v1`, `oci:${join(work, `pulled-${name.replace(':', '')}`)}:v1`], { stdio: 'pipe' });
    cold[name] = (Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2);
  } catch (e) {
    const why = String((e as { stderr?: Buffer }).stderr ?? e).split('\n').find((l) => l.includes('level=fatal')) ?? String(e);
    console.error(`${name}: cold pull failed: ${why}`);
    cold[name] = `failed (${/status code from registry (\d+)/.exec(why)?.[1] ?? 'error'})`;
  }
}

const rss = { stowage: peakRssMiB(servers.stowage.proc.pid), 'registry:2': peakRssMiB(servers['registry:2'].proc.pid) };
await Promise.all([...Object.values(servers), ...Object.values(caches), upstream].map((p) => stop(p)));
await swift.stop();
await dispatcher.close();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[][] = [
  ['metric', 'stowage', 'registry:2', 'stowage / registry:2'],
  ['push 512 MiB image, skopeo (s, median of 2)', median(pushTimes.stowage!).toFixed(2), median(pushTimes['registry:2']!).toFixed(2), (median(pushTimes.stowage!) / median(pushTimes['registry:2']!)).toFixed(2)],
  ['CPU-seconds of the server for both pushes', cpuPush.stowage.toFixed(1), cpuPush['registry:2'].toFixed(1), (cpuPush.stowage / cpuPush['registry:2']).toFixed(2)],
  ['cold pull through the cache, 256 MiB (s)', cold.stowage!, cold['registry:2']!, Number.isFinite(Number(cold.stowage)) ? (Number(cold.stowage) / Number(cold['registry:2'])).toFixed(2) : '-'],
  ['peak RSS, push + warm GETs (MiB)', rss.stowage.toFixed(0), rss['registry:2'].toFixed(0), (rss.stowage / rss['registry:2']).toFixed(2)],
];
const warmRows: string[][] = [['warm blob GET, 64 MiB, 8 clients following redirects', 'GiB/s', 'requests', 'server CPU-s']];
for (const [name, r] of Object.entries(warm)) warmRows.push([name, r.gibs.toFixed(2), String(r.requests), Number.isNaN(r.cpu) ? '-' : r.cpu.toFixed(1)]);
const report = `## stowage vs registry:2 on Swift's S3 API (${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}; Swift 2.30 single node (s3api) on loopback, same bucket; ${seconds} s per GET run
${table(rows)}

${table(warmRows)}
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `object-store-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
