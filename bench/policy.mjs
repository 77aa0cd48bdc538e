// Benchmark (issue 19): what the signature policy costs. Two stowage caches in front of one
// upstream (registry:2 holding N small images, each with a cosign classic signature made here
// with an openssl key), one without a policy and one with an enforce rule over every repository:
//   cold: N manifests fetched by digest, one after another (the policy adds the signature lookups
//         upstream: the .sig tag, the referrers API, the referrers tag; plus verifying and keeping)
//   warm: wrk on one cached manifest by tag and by digest, the two caches taking turns 3 times (the policy adds one remembered-result
//         lookup per request); must stay >= 0.9x of the cache without a policy
// Same run, side by side, as ratios; CPU seconds and peak RSS of each cache.
// Usage: npm run build && node bench/policy.mjs [N] [wrk seconds]
import { execFileSync } from 'node:child_process';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  cpuSeconds, freePort, makeImage, need, peakRssMiB, pushBlob, pushImage, pushManifest, registry2Config, sha256, start, stop, stowageConfig, table, waitHttp, wrk, STOWAGE_NODE_ARGS } from './lib.mjs';

need(['docker-registry', 'wrk', 'openssl']);
const N = Number(process.argv[2] ?? 200);
const SECONDS = Number(process.argv[3] ?? 10);
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const work = mkdtempSync(join(tmpdir(), 'stowage-policy-bench-'));

const keyFile = join(work, 'release.key');
const pubFile = join(work, 'release.pub');
execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile]);
execFileSync('openssl', ['pkey', '-in', keyFile, '-pubout', '-out', pubFile]);
const key = createPrivateKey(readFileSync(keyFile));

/** cosign's classic signature of `digest`: a simple-signing payload layer, its signature in an annotation. */
function classicSignature(reference, digest) {
  const payload = Buffer.from(JSON.stringify({
    critical: { identity: { 'docker-reference': reference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' }, optional: null,
  }));
  const config = Buffer.from(JSON.stringify({ architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [sha256(payload)] }, config: {} }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: config.length, digest: sha256(config) },
    layers: [{
      mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', size: payload.length, digest: sha256(payload),
      annotations: { 'dev.cosignproject.cosign/signature': sign('sha256', payload, key).toString('base64') },
    }],
  }));
  return { blobs: [config, payload], manifest };
}

// The upstream: N signed images of one small layer each.
const upPort = await freePort();
writeFileSync(join(work, 'up.yml'), registry2Config(join(work, 'up'), upPort));
const up = start('upstream', 'docker-registry', ['serve', join(work, 'up.yml')]);
await waitHttp(`http://127.0.0.1:${upPort}/v2/`);
const upUrl = `http://127.0.0.1:${upPort}`;
const digests = [];
for (let i = 0; i < N; i++) {
  const image = makeImage([2048]);
  await pushImage(upUrl, 'bench/app', `v${i}`, image);
  const digest = sha256(image.manifest);
  const sig = classicSignature('upstream.test/bench/app', digest);
  for (const b of sig.blobs) await pushBlob(upUrl, 'bench/app', b);
  await pushManifest(upUrl, 'bench/app', `${digest.replace(':', '-')}.sig`, sig.manifest);
  digests.push(digest);
}

async function startStowage(name, extra) {
  const port = await freePort();
  const file = join(work, `${name}.yml`);
  writeFileSync(file, stowageConfig(join(work, name), port, `upstreams:\n  - {name: upstream.test, url: "${upUrl}"}\n${extra}`));
  // POLICY_CPU_PROF=DIR: V8 CPU profiles of both caches, written into DIR when they stop.
  const prof = process.env.POLICY_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.POLICY_CPU_PROF}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  const p = start(name, process.execPath, [...STOWAGE_NODE_ARGS, ...prof, 'dist/cli.js', 'serve', file]);
  await waitHttp(`http://127.0.0.1:${port}/v2/`);
  return { ...p, url: `http://127.0.0.1:${port}/v2/upstream.test/bench/app` };
}

const get = async (url) => {
  const r = await fetch(url, { headers: { accept: ACCEPT } });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
};

const policy = `policy:\n  keys: {release: [${pubFile}]}\n  rules:\n    - {repository: "upstream.test/**", mode: enforce, keys: [release]}\n`;
const result = {};
const servers = {};
for (const [name, extra] of [['without', ''], ['with', policy]]) {
  const s = servers[name] = await startStowage(name, extra);
  const cpu0 = cpuSeconds(s.proc.pid);
  const t0 = process.hrtime.bigint();
  for (const d of digests) await get(`${s.url}/manifests/${d}`);
  const coldMs = Number(process.hrtime.bigint() - t0) / 1e6 / N;
  result[name] = { coldMs, coldCpu: cpuSeconds(s.proc.pid) - cpu0, byTag: [], byDigest: [], tagCpuUs: [], digestCpuUs: [] };
  await get(`${s.url}/manifests/v0`);
}
// Warm: the two caches take turns, ROUNDS times, so that the machine's drift (these VMs are shared)
// falls on both alike; medians of req/s and of CPU-µs per request (the steadier measure).
const ROUNDS = 3;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (let round = 0; round < ROUNDS; round++) {
  for (const name of round % 2 === 0 ? ['with', 'without'] : ['without', 'with']) {
    const s = servers[name];
    const r = result[name];
    for (const [path, rps, cpu] of [['manifests/v0', r.byTag, r.tagCpuUs], [`manifests/${digests[0]}`, r.byDigest, r.digestCpuUs]]) {
      const c0 = cpuSeconds(s.proc.pid);
      const w = wrk(`${s.url}/${path}`, { seconds: SECONDS, headers: [`Accept: ${ACCEPT}`] });
      if (w.non2xx) throw new Error(`${name}: non-2xx answers under wrk`);
      rps.push(w.rps);
      cpu.push(((cpuSeconds(s.proc.pid) - c0) * 1e6) / (w.rps * SECONDS));
    }
  }
}
for (const [name, s] of Object.entries(servers)) {
  const r = result[name];
  Object.assign(r, { byTag: median(r.byTag), byDigest: median(r.byDigest), tagCpuUs: median(r.tagCpuUs), digestCpuUs: median(r.digestCpuUs), rss: peakRssMiB(s.proc.pid) });
  await stop(s);
}
await stop(up);

const W = result.with, O = result.without;
const f = (x, d = 2) => x.toFixed(d);
const rows = [
  ['metric', 'policy on', 'no policy', 'on / off'],
  [`cold manifest fetch by digest, mean of ${N} (ms)`, f(W.coldMs), f(O.coldMs), f(W.coldMs / O.coldMs)],
  ['  CPU seconds for the cold fetches', f(W.coldCpu), f(O.coldCpu), f(W.coldCpu / O.coldCpu)],
  [`warm manifest GET by tag (req/s, wrk -t2 -c16, median of ${ROUNDS})`, f(W.byTag, 0), f(O.byTag, 0), f(W.byTag / O.byTag)],
  ['  CPU-µs per request', f(W.tagCpuUs, 0), f(O.tagCpuUs, 0), f(O.tagCpuUs / W.tagCpuUs)],
  [`warm manifest GET by digest (req/s, median of ${ROUNDS})`, f(W.byDigest, 0), f(O.byDigest, 0), f(W.byDigest / O.byDigest)],
  ['  CPU-µs per request', f(W.digestCpuUs, 0), f(O.digestCpuUs, 0), f(O.digestCpuUs / W.digestCpuUs)],
  ['peak RSS (MiB)', f(W.rss, 0), f(O.rss, 0), f(W.rss / O.rss)],
];
const report = `## signature policy: cost of verification (${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}; upstream: registry:2 on loopback (no referrers API, so the policy also asks for the referrers tag); ${SECONDS} s per wrk run
${table(rows)}
warm by tag and by digest with the policy must stay >= 0.9x (req/s; CPU per request as off / on): ${W.byTag / O.byTag >= 0.9 && W.byDigest / O.byDigest >= 0.9 ? 'yes' : 'NO'} (req/s), ${O.tagCpuUs / W.tagCpuUs >= 0.9 && O.digestCpuUs / W.digestCpuUs >= 0.9 ? 'yes' : 'NO'} (CPU per request)
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `policy-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
