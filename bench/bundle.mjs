// Benchmark (issue 10): stowage export / import throughput beside skopeo copying the same images
// to an OCI layout and back, in one run. Every command is timed by GNU time (wall, CPU seconds,
// peak RSS). stowage reads and writes its storage directly; skopeo goes through the registry API
// of a running stowage (the way skopeo is used for this job today).
// Usage: npm run build && node bench/bundle.mjs
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { freePort, makeImage, need, start, stop, stowageConfig, table, waitHttp, writeOciLayout, STOWAGE_NODE_ARGS } from './lib.mjs';

need(['skopeo']);
const MiB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'stowage-bundle-bench-'));
const IMAGES = [['app', [64 * MiB, 64 * MiB, 64 * MiB, 64 * MiB]], ['big', [512 * MiB]]];
const totalBytes = IMAGES.reduce((n, [, sizes]) => n + sizes.reduce((a, b) => a + b, 0), 0);

/** Runs a command under GNU time: {s, cpu, rssMiB}. */
function timed(cmd, args) {
  const out = join(work, 'time.txt');
  execFileSync('/usr/bin/time', ['-o', out, '-f', '%e %U %S %M', cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  const [e, u, s, m] = execFileSync('cat', [out], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  return { s: e, cpu: u + s, rssMiB: m / 1024 };
}

async function server(name) {
  const port = await freePort();
  const root = join(work, name);
  const file = join(work, `${name}.yml`);
  writeFileSync(file, stowageConfig(root, port));
  const p = start(name, process.execPath, [...STOWAGE_NODE_ARGS, 'dist/cli.js', 'serve', file]);
  await waitHttp(`http://127.0.0.1:${port}/v2/`);
  return { ...p, port, root, file };
}

const source = await server('source');
for (const [name, sizes] of IMAGES) {
  const layout = join(work, `seed-${name}`);
  writeOciLayout(layout, 'v1', makeImage(sizes));
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout}:v1`, `docker://127.0.0.1:${source.port}/bench/${name}:v1`]);
  rmSync(layout, { recursive: true, force: true });
}
const refs = IMAGES.map(([name]) => `bench/${name}:v1`);
const node = (...args) => timed(process.execPath, ['dist/cli.js', ...args]);
const fresh = (name) => { const root = join(work, name); const file = join(work, `${name}.yml`); writeFileSync(file, stowageConfig(root, 1)); return file; };
const rows = [];
const row = (what, tool, r) => rows.push([what, tool, `${r.s.toFixed(2)} s`, `${(totalBytes / MiB / r.s).toFixed(0)} MiB/s`, r.cpu.toFixed(2), r.rssMiB.toFixed(0)]);

// export: stowage to a directory and to a tar; skopeo to an oci: directory
const dirOut = join(work, 'export-dir');
const tarOut = join(work, 'export.tar');
row('export -> OCI layout dir', 'stowage export', node('export', '--config', source.file, '-o', dirOut, ...refs));
row('export -> tar', 'stowage export', node('export', '--config', source.file, '-o', tarOut, ...refs));
const skopeoDir = join(work, 'skopeo-dir');
let sk = { s: 0, cpu: 0, rssMiB: 0 };
for (const ref of refs) {
  const r = timed('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--preserve-digests', `docker://127.0.0.1:${source.port}/${ref}`, `oci:${skopeoDir}:${ref}`]);
  sk = { s: sk.s + r.s, cpu: sk.cpu + r.cpu, rssMiB: Math.max(sk.rssMiB, r.rssMiB) };
}
row('export -> OCI layout dir', 'skopeo copy docker:// -> oci:', sk);
await stop(source);

// import: stowage from the dir and the tar into empty data directories; skopeo from oci: into a running stowage
row('import <- OCI layout dir', 'stowage import', node('import', '--config', fresh('import-dir'), dirOut));
row('import <- tar', 'stowage import', node('import', '--config', fresh('import-tar'), tarOut));
const target = await server('skopeo-target');
sk = { s: 0, cpu: 0, rssMiB: 0 };
for (const ref of refs) {
  const r = timed('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--preserve-digests', `oci:${skopeoDir}:${ref}`, `docker://127.0.0.1:${target.port}/${ref}`]);
  sk = { s: sk.s + r.s, cpu: sk.cpu + r.cpu, rssMiB: Math.max(sk.rssMiB, r.rssMiB) };
}
row('import <- OCI layout dir', 'skopeo copy oci: -> docker:// (+ stowage serving)', sk);
await stop(target);

const head = `Bundle throughput, ${IMAGES.length} images, ${totalBytes / MiB} MiB (4 x 64 MiB layers + one 512 MiB layer), `
  + `${cpus().length} cores ${cpus()[0]?.model ?? ''}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString()}\n`
  + 'CPU = user + system seconds of the command itself; RSS = its peak (GNU time). skopeo\'s figures exclude the stowage server it talks to.\n\n';
const report = head + table([['job', 'tool', 'wall', 'throughput', 'CPU s', 'peak RSS MiB'], ...rows]);
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `bundle-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), `${report}\n`);
rmSync(work, { recursive: true, force: true });
