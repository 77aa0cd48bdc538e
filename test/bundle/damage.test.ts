/**
 * Bundles that arrive damaged, and bundles written by another tool, imported by the real CLI into
 * real data directories: a flipped byte and a truncated part are refused and listed (exit 1) while
 * everything else is imported; nothing damaged ever becomes visible. skopeo's `oci:` and
 * `oci-archive:` layouts import as they are. Progress: bars in a pseudo-terminal (`script`),
 * plain lines without one.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { makeImage, pushImageHttp, sha256, ALL_ACCEPT, type Image } from '../helpers/image.js';
import { childEnv, runCli, startStowage, writeStowageConfig, type Proc } from '../helpers/procs.js';
import { skopeo, skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.js';
import { freePort, missingTools } from '../helpers/tools.js';

const skip = missingTools('skopeo', 'script');
const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

const IMAGES: Record<string, Image> = {
  'one/a:1': makeImage({ seed: 31, layers: 2, layerSize: 90_000 }),
  'two/b:1': makeImage({ seed: 32, layers: 2, layerSize: 90_000 }),
  'three/c:1': makeImage({ seed: 33, layers: 2, layerSize: 90_000 }),
};
const json = (s: string) => JSON.parse(s) as any;
const blobFile = (root: string, digest: string) => join(root, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');

async function status(base: string, path: string): Promise<number> {
  const res = await fetch(`${base}${path}`, { headers: { accept: ALL_ACCEPT } });
  await res.arrayBuffer();
  return res.status;
}

t.test('damaged and foreign bundles', { skip, timeout: 600_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-damage-'));
  const procs: Proc[] = [];
  t.teardown(async () => {
    for (const p of procs) await p.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const source = await startStowage();
  procs.push(source);
  for (const [ref, img] of Object.entries(IMAGES)) {
    const [repo, tag] = ref.split(':');
    await pushImageHttp(source.url, repo!, tag!, img);
  }
  const layout = join(work, 'layout');
  const exported = await runCli(['export', '--config', source.configFile!, '-o', layout, '--all', '--json']);
  t.equal(exported.code, 0, exported.stderr);

  /** A fresh data directory (no server), and a server on it once imported. */
  const fresh = async (config: Record<string, unknown> = {}) => writeStowageConfig({ config });

  await t.test('one flipped byte: that image is refused and listed, the others imported', async (t) => {
    const damaged = join(work, 'flipped');
    cpSync(layout, damaged, { recursive: true });
    const victim = IMAGES['two/b:1']!.layers[1]!.digest;
    const file = join(damaged, 'blobs/sha256', victim.slice(7));
    const bytes = readFileSync(file);
    bytes[1000] = bytes[1000]! ^ 0x01;
    writeFileSync(file, bytes);
    const target = await fresh();
    const r = await runCli(['import', '--config', target.file, damaged, '--json']);
    t.equal(r.code, 1, 'exit code 1');
    const report = json(r.stdout);
    t.match(report.images.find((i: any) => i.name === 'two/b:1'), { status: 'failed', reason: new RegExp(`${victim}: refused: content does not match its digest`) });
    t.same(report.images.filter((i: any) => i.status === 'imported').map((i: any) => i.name).sort(), ['one/a:1', 'three/c:1']);
    t.notOk(existsSync(blobFile(target.rootDir, victim)), 'the damaged blob was never stored');
    const text = await runCli(['import', '--config', target.file, damaged]);
    t.match(text.stdout, /two\/b:1 .*REFUSED: .*does not match its digest/, 'the table lists the refused image');
    const server = await startStowage({ rootDir: target.rootDir, port: target.port });
    procs.push(server);
    t.equal(await status(server.url, '/v2/two/b/manifests/1'), 404, 'the refused image is not visible');
    t.equal(await status(server.url, `/v2/two/b/blobs/${IMAGES['two/b:1']!.layers[0]!.digest}`), 404, 'nor are its intact blobs');
    t.equal(sha256(await skopeoInspectRaw(`docker://127.0.0.1:${server.port}/one/a:1`)), IMAGES['one/a:1']!.manifest.digest);
    await skopeoCopy(`docker://127.0.0.1:${server.port}/three/c:1`, `dir:${join(work, 'c-out')}`);
    await server.stop();
    // The undamaged bundle completes the import: resumable, nothing else re-stored.
    const fixed = await runCli(['import', '--config', target.file, layout, '--json']);
    t.equal(fixed.code, 0, fixed.stderr);
    t.same(json(fixed.stdout).blobs.stored, 1, 'only the blob that was refused is stored now');
  });

  await t.test('a truncated part: the part is named, images past the cut refused, the rest imported', async (t) => {
    const dir = join(work, 'parts');
    const tar = join(dir, 'b.tar');
    execFileSync('mkdir', ['-p', dir]);
    const r = await runCli(['export', '--config', source.configFile!, '-o', tar, '--split', '100KiB', 'one/a:1', 'two/b:1', 'three/c:1']);
    t.equal(r.code, 0, r.stderr);
    const parts = readdirSync(dir).filter((n) => /\.tar\.\d{3}$/.test(n)).sort();
    t.ok(parts.length >= 5, `${parts.length} parts`);
    const cut = join(dir, parts[2]!);
    truncateSync(cut, statSync(cut).size - 5000);
    const target = await fresh();
    const imp = await runCli(['import', '--config', target.file, join(dir, parts[0]!), '--json']);
    t.equal(imp.code, 1);
    const report = json(imp.stdout);
    t.match(report.problems.join('\n'), new RegExp(`${parts[2]}: sha256 differs from SHA256SUMS`), 'the truncated part is named');
    const failed = report.images.filter((i: any) => i.status === 'failed');
    const imported = report.images.filter((i: any) => i.status === 'imported');
    t.ok(failed.length >= 1, `refused: ${failed.map((i: any) => `${i.name} (${i.reason})`).join(', ')}`);
    t.equal(failed.length + imported.length, 3);
    const server = await startStowage({ rootDir: target.rootDir, port: target.port });
    procs.push(server);
    for (const i of failed) t.equal(await status(server.url, `/v2/${i.name.replace(':', '/manifests/')}`), 404, `${i.name} not visible`);
    for (const i of imported) await skopeoCopy(`docker://127.0.0.1:${server.port}/${i.name}`, `dir:${join(work, `p-${i.name.replace(/\W/g, '_')}`)}`);
    await server.stop();
  });

  await t.test('bundles made by skopeo (oci: and oci-archive:) import as cached images', async (t) => {
    const dead = await freePort();
    const config = { upstreams: [{ name: 'docker.io', url: `http://127.0.0.1:${dead}` }], default_upstream: 'docker.io' };
    const skDir = join(work, 'skopeo-layout');
    const skTar = join(work, 'skopeo.tar');
    const src = `docker://127.0.0.1:${source.port}`;
    await skopeoCopy(`${src}/one/a:1`, `oci:${skDir}:docker.io/library/made-by-skopeo:1`);
    await skopeoCopy(`${src}/two/b:1`, `oci-archive:${skTar}:docker.io/library/archived:2`);
    const target = await fresh(config);
    for (const bundle of [skDir, skTar]) {
      const r = await runCli(['import', '--config', target.file, bundle, '--json']);
      t.equal(r.code, 0, r.stdout + r.stderr);
      t.match(json(r.stdout).images, [{ kind: 'cached', status: 'imported' }]);
    }
    const server = await startStowage({ rootDir: target.rootDir, port: target.port, config });
    procs.push(server);
    t.equal(sha256(await skopeoInspectRaw(`docker://127.0.0.1:${server.port}/library/made-by-skopeo:1`)), IMAGES['one/a:1']!.manifest.digest);
    t.equal(sha256(await skopeoInspectRaw(`docker://127.0.0.1:${server.port}/library/archived:2`)), IMAGES['two/b:1']!.manifest.digest);
    await skopeoCopy(`docker://127.0.0.1:${server.port}/library/archived:2`, `dir:${join(work, 'archived')}`);
  });

  await t.test('progress: bars in a pseudo-terminal, plain lines without one', async (t) => {
    const out = join(work, 'tty.tar');
    const command = [process.execPath, CLI, 'export', '--config', source.configFile!, '-o', out, '--all'].map((a) => `'${a}'`).join(' ');
    const typed = execFileSync('script', ['-qefc', `stty cols 200; ${command}`, '/dev/null'], { env: childEnv(), encoding: 'utf8', timeout: 120_000 });
    t.match(typed, /\u001b\[/, 'terminal control sequences (the bars redraw in place)');
    t.match(typed, /[█░]{5,}/, 'bar characters');
    t.match(typed, /100% \| export one\/a:1 \| [\d.]+ KiB \/ [\d.]+ KiB \| [\d.]+ [KMG]?i?B\/s \| ETA/, 'a finished bar with bytes, rate and ETA');
    t.match(typed, /images\s+blobs\s+bytes\s+skipped\s+failed\s+time/, 'summary table');
    const plain = await runCli(['export', '--config', source.configFile!, '-o', join(work, 'plain.tar'), '--all']);
    t.equal(plain.code, 0);
    t.notMatch(plain.stderr, /\u001b\[/, 'no control sequences without a terminal');
    t.match(plain.stderr, /^export: 3\/3 done, [\d.]+ KiB of [\d.]+ KiB \(100%\), /m, 'a plain progress line');
    const quiet = await runCli(['export', '--config', source.configFile!, '-o', join(work, 'quiet.tar'), '--all', '--json']);
    t.equal(quiet.stderr, '', '--json: nothing on stderr');
    t.equal(json(quiet.stdout).images.length, 3);
    copyFileSync(out, join(work, 'copy.tar'));
  });
});
