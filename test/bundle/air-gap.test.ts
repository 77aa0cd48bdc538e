/**
 * The way across the air gap, with real processes: a connected stowage (upstream: Debian's
 * registry:2) is pulled through, prefetched and exported while it runs; a second stowage whose
 * upstream cannot be reached imports the bundle (stopped, then beside its running server), and
 * skopeo pulls every image from it through every route with the digests the upstream had.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeImage, makeIndex, makeReferrer, pushBlobHttp, pushImageHttp, pushManifestHttp, sha256, ALL_ACCEPT, type Image } from '../helpers/image.js';
import { countRegistry2Requests, runCli, startRegistry2, startStowage, writeStowageConfig, type Proc } from '../helpers/procs.js';
import { skopeo, skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.js';
import { freePort, missingTools } from '../helpers/tools.js';

const skip = missingTools('docker-registry', 'skopeo', 'sha256sum');

const amd64 = { architecture: 'amd64', os: 'linux' };
const arm64 = { architecture: 'arm64', os: 'linux' };
const ALPINE = makeIndex([makeImage({ seed: 11, layers: 2, layerSize: 150_000, platform: amd64 }), makeImage({ seed: 12, layers: 2, layerSize: 150_000, platform: arm64 })]);
const BUSYBOX = makeImage({ seed: 13, layers: 1, layerSize: 200_000 });
const NODE = makeIndex([makeImage({ seed: 14, layers: 3, layerSize: 100_000, platform: amd64 }), makeImage({ seed: 15, layers: 3, layerSize: 100_000, platform: arm64 })]);
const APP = makeImage({ seed: 16, layers: 2, layerSize: 120_000 });
const SIG = makeReferrer(APP.manifest, 1);
/** The next version of APP: its first layer is APP's, one layer is new. */
const APP2: Image = (() => {
  const next = makeImage({ seed: 17, layers: 1, layerSize: 120_000 });
  const layers = [APP.layers[0]!, next.layers[0]!];
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: APP.manifest.mediaType,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: next.config.digest, size: next.config.bytes.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.bytes.length })),
  }));
  return { ...next, layers, manifest: { bytes, digest: sha256(bytes), mediaType: APP.manifest.mediaType } };
})();

const json = (s: string) => JSON.parse(s) as any;

async function manifestDigest(base: string, path: string): Promise<{ status: number; digest: string | null }> {
  const res = await fetch(`${base}${path}`, { headers: { accept: ALL_ACCEPT } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, digest: res.status === 200 ? sha256(body) : null };
}

t.test('export on a connected stowage, import on an isolated one, pull with skopeo', { skip, timeout: 600_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-airgap-'));
  const procs: Proc[] = [];
  t.teardown(async () => {
    for (const p of procs) await p.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const upstream = await startRegistry2();
  procs.push(upstream);
  await pushImageHttp(upstream.url, 'library/alpine', '3.20', ALPINE);
  await pushImageHttp(upstream.url, 'library/busybox', 'latest', BUSYBOX);
  await pushImageHttp(upstream.url, 'library/node', '20', NODE);

  const connected = await startStowage({ config: { upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io' } });
  procs.push(connected);
  const a = connected.configFile!;
  const aHost = `127.0.0.1:${connected.port}`;
  await pushImageHttp(connected.url, 'team/app', '1.0', APP);
  for (const b of [SIG.config, ...SIG.layers]) await pushBlobHttp(connected.url, 'team/app', b);
  await pushManifestHttp(connected.url, 'team/app', SIG.manifest.digest, SIG.manifest.bytes, SIG.manifest.mediaType);

  // Clients pull through the connected side: busybox whole, alpine for one platform only.
  await skopeoCopy(`docker://${aHost}/library/busybox:latest`, `dir:${join(work, 'bb')}`);
  await skopeo(['copy', '--quiet', '--src-tls-verify=false', '--override-arch', 'amd64', `docker://${aHost}/library/alpine:3.20`, `dir:${join(work, 'alpine-amd64')}`]);

  await t.test('prefetch pulls every platform once, and skips what is cached', async (t) => {
    const first = await runCli(['prefetch', '--config', a, 'node:20', '--json']);
    t.equal(first.code, 0, first.stderr);
    const r1 = json(first.stdout).images[0];
    t.match(r1, { name: 'docker.io/library/node:20', digest: NODE.digest, status: 'fetched', blobs: 8 });
    const layerGets = () => NODE.images.flatMap((i) => [i.config, ...i.layers]).map((b) => countRegistry2Requests(upstream, 'GET', `/v2/library/node/blobs/${b.digest}`));
    t.same(layerGets(), Array(8).fill(1), 'each blob of both platforms came from the upstream once');
    const again = await runCli(['prefetch', '--config', a, 'docker.io/library/node:20', '--pin', '--json']);
    t.equal(again.code, 0, again.stderr);
    t.match(json(again.stdout).images[0], { status: 'cached', fetched: 0 });
    t.same(layerGets(), Array(8).fill(1), 'nothing fetched again');
    const status = await runCli(['status', '--config', a, '--json']);
    t.match(json(status.stdout), { pins: ['docker.io/library/node:20'] }, '--pin is recorded');
    t.match(json(status.stdout).largest.find((i: any) => i.repo === 'docker.io/library/node'), { pinned: true });
  });

  const bundle = join(work, 'out', 'bundle.tar');
  await t.test('export --all beside the running server: split tar, SHA256SUMS, full reference names', async (t) => {
    execFileSync('mkdir', ['-p', join(work, 'out')]);
    const r = await runCli(['export', '--config', a, '--all', '-o', bundle, '--split', '256KiB', '--json']);
    t.equal(r.code, 0, r.stderr);
    const report = json(r.stdout);
    t.same(report.images.map((i: any) => i.name).sort(), ['docker.io/library/alpine:3.20', 'docker.io/library/busybox:latest', 'docker.io/library/node:20', 'team/app:1.0']);
    t.equal(report.images.find((i: any) => i.name === 'team/app:1.0').referrers, 1, 'the signature travels with the app');
    const parts = readdirSync(join(work, 'out')).filter((n) => /^bundle\.tar\.\d{3}$/.test(n));
    t.ok(parts.length > 3, `cut into ${parts.length} parts`);
    t.same(report.files.map((f: string) => f.slice(f.lastIndexOf('/') + 1)), parts);
    t.match(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: join(work, 'out'), encoding: 'utf8' }), /bundle\.tar\.000: OK/);
    t.equal(countRegistry2Requests(upstream, 'GET', `/v2/library/alpine/blobs/${ALPINE.images[1]!.layers[0]!.digest}`), 1,
      'the platform no client pulled was fetched to complete the image');
  });

  await t.test('skopeo reads an exported directory and tar by full reference', async (t) => {
    const dir = join(work, 'layout');
    const r = await runCli(['export', '--config', a, '-o', dir, 'alpine:3.20', 'team/app:1.0']);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /images\s+blobs\s+bytes\s+skipped\s+failed\s+time/, 'summary table');
    const index = json(readFileSync(join(dir, 'index.json'), 'utf8'));
    t.same(index.manifests.filter((m: any) => m.annotations?.['org.opencontainers.image.ref.name']).map((m: any) => m.annotations['org.opencontainers.image.ref.name']).sort(),
      ['docker.io/library/alpine:3.20', 'team/app:1.0']);
    t.equal(sha256(await skopeoInspectRaw(`oci:${dir}:docker.io/library/alpine:3.20`)), ALPINE.digest);
    await skopeoCopy(`oci:${dir}:docker.io/library/alpine:3.20`, `dir:${join(work, 'from-layout')}`);
    const tarFile = join(work, 'one.tar');
    t.equal((await runCli(['export', '--config', a, '-o', tarFile, 'docker.io/library/busybox:latest'])).code, 0);
    t.equal(sha256(await skopeoInspectRaw(`oci-archive:${tarFile}:docker.io/library/busybox:latest`)), BUSYBOX.manifest.digest);
  });

  // The isolated side: its upstream is a port nobody listens on.
  const dead = await freePort();
  const isolatedConfig = { upstreams: [{ name: 'docker.io', url: `http://127.0.0.1:${dead}` }], default_upstream: 'docker.io' };
  const b = await writeStowageConfig({ config: isolatedConfig });

  await t.test('import on a stopped data directory; again: everything present', async (t) => {
    const r = await runCli(['import', '--config', b.file, `${bundle}.000`, '--json']);
    t.equal(r.code, 0, r.stdout + r.stderr);
    const report = json(r.stdout);
    t.same(report.problems, []);
    t.same(report.images.map((i: any) => `${i.name} ${i.kind} ${i.status}`).sort(), [
      'docker.io/library/alpine:3.20 cached imported', 'docker.io/library/busybox:latest cached imported',
      'docker.io/library/node:20 cached imported', 'team/app:1.0 pushed imported', `team/app@${SIG.manifest.digest} referrer imported`,
    ]);
    const again = await runCli(['import', '--config', b.file, bundle, '--json']);
    t.equal(again.code, 0, again.stderr);
    const second = json(again.stdout);
    t.ok(second.images.every((i: any) => i.status === 'present'), 'every image present');
    t.equal(second.blobs.stored, 0, 'no blob stored twice');
  });

  const isolated = await startStowage({ rootDir: b.rootDir, port: b.port, config: isolatedConfig });
  procs.push(isolated);
  const bHost = `127.0.0.1:${isolated.port}`;

  await t.test('skopeo pulls every image from the isolated side, every route, same digests', async (t) => {
    const cases: Array<[string, string]> = [
      [`docker://${bHost}/library/alpine:3.20`, ALPINE.digest],
      [`docker://${bHost}/docker.io/library/busybox:latest`, BUSYBOX.manifest.digest],
      [`docker://${bHost}/library/node:20`, NODE.digest],
      [`docker://${bHost}/team/app:1.0`, APP.manifest.digest],
    ];
    for (const [ref, digest] of cases) {
      t.equal(sha256(await skopeoInspectRaw(ref)), digest, `${ref} has the upstream's digest`);
      const dir = join(work, `pull-${sha256(ref).slice(7, 19)}`);
      await skopeoCopy(ref, `dir:${dir}`);
      t.ok(existsSync(join(dir, 'manifest.json')), `${ref}: every platform and layer pulled`);
    }
    t.match(await manifestDigest(isolated.url, '/v2/library/node/manifests/20?ns=docker.io'), { status: 200, digest: NODE.digest }, 'containerd route (?ns=)');
    const referrers = await (await fetch(`${isolated.url}/v2/team/app/referrers/${APP.manifest.digest}`)).json() as any;
    t.same(referrers.manifests.map((m: any) => m.digest), [SIG.manifest.digest], 'the referrer came along');
  });

  await t.test('a delta bundle carries only new blobs and imports beside the running server', async (t) => {
    await pushImageHttp(connected.url, 'team/app', '1.1', APP2);
    const delta = join(work, 'delta.tar');
    const r = await runCli(['export', '--config', a, '-o', delta, '--exclude-bundle', `${bundle}.000`, 'team/app:1.1', '--json']);
    t.equal(r.code, 0, r.stderr);
    const report = json(r.stdout);
    t.same(report.blobs, { written: 3, excluded: 1, shared: 0 }, 'config, new layer, manifest written; the shared layer left out');
    const imp = await runCli(['import', '--config', b.file, delta, '--json']);
    t.equal(imp.code, 0, imp.stdout + imp.stderr);
    t.match(json(imp.stdout).images, [{ name: 'team/app:1.1', status: 'imported' }]);
    t.equal(sha256(await skopeoInspectRaw(`docker://${bHost}/team/app:1.1`)), APP2.manifest.digest);
    await skopeoCopy(`docker://${bHost}/team/app:1.1`, `dir:${join(work, 'app11')}`);
  });
});
