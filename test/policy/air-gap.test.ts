/**
 * Signatures across the air gap, the whole file inside a network namespace with only loopback.
 * The connected side (upstream: Debian's registry:2; a warn rule) pulls signed images in both
 * cosign forms, a signed index and one whose signature is tampered (a valid signature over another
 * manifest's digest); prefetch --verify and export --verify refuse the tampered one; a plain export
 * carries everything with its signatures. Then the upstream is stopped, and the isolated side
 * (enforce; its upstream is Docker Hub, unreachable) imports the bundle: the tampered image is
 * refused and listed, exit 1, the rest imported; `stowage verify` finds every signature there and
 * the server serves the images, signatures checked offline.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachBundles, bundleReferrer, classicSignature, dsseBundle, opensslKey, pushArtifact, signatureTag } from '../helpers/cosign.js';
import { ALL_ACCEPT, makeImage, makeIndex, pushImageHttp, type Image } from '../helpers/image.js';
import { interfaces, isolate } from '../helpers/netns.js';
import { runCli, startRegistry2, startStowage, writeStowageConfig, type Proc } from '../helpers/procs.js';
import { missingTools } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (network namespace)'
  : missingTools('ip', 'nsenter', 'docker-registry', 'openssl');
isolate(skip);
const { default: t } = await import('tap');

const status = async (url: string) => {
  const r = await fetch(url, { headers: { accept: ALL_ACCEPT } });
  await r.arrayBuffer();
  return r.status;
};

t.test('signatures travel with export and import, and verify with the network gone', { skip, timeout: 600_000 }, async (t) => {
  t.same(interfaces(), ['lo'], 'only loopback');
  const work = mkdtempSync(join(tmpdir(), 'policy-airgap-'));
  const procs: Proc[] = [];
  t.teardown(async () => {
    for (const p of procs) await p.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const release = opensslKey(work, 'release');
  const vendor = opensslKey(work, 'vendor', 'rsa');
  const keys = { release: [release.pub], vendor: [vendor.pub] };

  const upstream = await startRegistry2();
  procs.push(upstream);
  const images: Record<string, Image> = {};
  for (const [repo, seed] of [['acme/signed', 1101], ['acme/bundled', 1102], ['acme/tampered', 1103]] as const) {
    images[repo] = makeImage({ seed, layers: 2, layerSize: 5000 });
    await pushImageHttp(upstream.url, repo, '1', images[repo]);
  }
  const signed = images['acme/signed']!;
  const bundled = images['acme/bundled']!;
  const tampered = images['acme/tampered']!;
  await pushArtifact(upstream.url, 'acme/signed', classicSignature('docker.io/acme/signed', signed.manifest.digest, [release]), signatureTag(signed.manifest.digest));
  await attachBundles(upstream.url, 'acme/bundled', bundled.manifest.digest, [bundleReferrer(
    { digest: bundled.manifest.digest, size: bundled.manifest.bytes.length, mediaType: bundled.manifest.mediaType },
    dsseBundle('docker.io/acme/bundled', bundled.manifest.digest, vendor))]);
  await pushArtifact(upstream.url, 'acme/tampered', classicSignature('docker.io/acme/tampered', tampered.manifest.digest, [release], { payloadDigest: signed.manifest.digest }),
    signatureTag(tampered.manifest.digest));
  const multi = makeIndex([makeImage({ seed: 1104, platform: { architecture: 'amd64', os: 'linux' } }), makeImage({ seed: 1105, platform: { architecture: 'arm64', os: 'linux' } })]);
  await pushImageHttp(upstream.url, 'acme/multi', '1', multi);
  await pushArtifact(upstream.url, 'acme/multi', classicSignature('docker.io/acme/multi', multi.digest, [release]), signatureTag(multi.digest));
  const names = ['docker.io/acme/signed:1', 'docker.io/acme/bundled:1', 'docker.io/acme/multi:1', 'docker.io/acme/tampered:1'];

  const connected = await startStowage({
    config: {
      upstreams: [{ name: 'docker.io', url: upstream.url }],
      policy: { keys, rules: [{ repository: 'docker.io/acme/**', mode: 'warn', keys: ['release', 'vendor'] }] },
    },
  });
  procs.push(connected);
  for (const n of names) t.equal(await status(`${connected.url}/v2/${n.replace(':', '/manifests/')}`), 200, `connected side serves ${n} (warn)`);
  for (const img of multi.images) t.equal(await status(`${connected.url}/v2/docker.io/acme/multi/manifests/${img.manifest.digest}`), 200);

  await t.test('prefetch --verify and export --verify refuse what its rule would refuse', async (t) => {
    const pre = await runCli(['prefetch', '--config', connected.configFile!, '--verify', '--json', 'docker.io/acme/signed:1', 'docker.io/acme/tampered:1']);
    t.equal(pre.code, 1, pre.stderr);
    const rows = (JSON.parse(pre.stdout) as { images: Array<{ name: string; status: string; reason?: string }> }).images;
    t.match(rows.find((r) => r.name === 'docker.io/acme/signed:1'), { status: /^(fetched|cached)$/ });
    t.match(rows.find((r) => r.name === 'docker.io/acme/tampered:1'), { status: 'failed', reason: /no signature by a key of sets release or vendor \(policy rule 1\)/ });
    const out = join(work, 'verified');
    const exp = await runCli(['export', '--config', connected.configFile!, '--verify', '--json', '-o', out, ...names]);
    t.equal(exp.code, 1, exp.stderr);
    const report = JSON.parse(exp.stdout) as { images: Array<{ name: string; status: string; reason?: string }> };
    t.same(report.images.filter((i) => i.status === 'failed').map((i) => i.name), ['docker.io/acme/tampered:1'], 'only the tampered image is refused');
    const index = readFileSync(join(out, 'index.json'), 'utf8');
    t.notOk(index.includes(tampered.manifest.digest), 'and it is not in the bundle');
    t.ok(index.includes(signatureTag(signed.manifest.digest)), 'a classic signature travels under its tag');
  });

  const bundle = join(work, 'all.tar');
  const exp = await runCli(['export', '--config', connected.configFile!, '--json', '-o', bundle, ...names]);
  t.equal(exp.code, 0, `plain export: ${exp.stderr}`);
  for (const p of procs.splice(0)) await p.stop(); // the connected side and its upstream are gone

  // The isolated side: its only upstream is Docker Hub, which nothing here can reach.
  const policy = { keys, rules: [{ repository: 'docker.io/acme/**', mode: 'enforce', keys: ['release', 'vendor'] }] };
  const isolated = await writeStowageConfig({ config: { upstreams: [{ name: 'docker.io', url: 'https://registry-1.docker.io' }], policy } });

  await t.test('import refuses the tampered image, imports the rest, exits 1', async (t) => {
    const r = await runCli(['import', '--config', isolated.file, '--json', bundle]);
    t.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout) as { images: Array<{ name: string; status: string; kind?: string; reason?: string }> };
    const failed = report.images.filter((i) => i.status === 'failed');
    t.same(failed.map((i) => i.name), ['docker.io/acme/tampered:1']);
    t.match(failed[0]!.reason, `docker.io/acme/tampered@${tampered.manifest.digest}: no signature by a key of sets release or vendor (policy rule 1)`);
    for (const n of names.slice(0, 3)) t.ok(report.images.some((i) => i.name === n && i.status === 'imported'), `${n} imported`);
    t.ok(report.images.some((i) => i.name === `docker.io/acme/signed:${signatureTag(signed.manifest.digest)}` && i.status === 'imported'), 'with its .sig tag');
    t.ok(report.images.some((i) => i.kind === 'referrer' && i.status === 'imported'), 'and the bundle referrer');
    const repo = join(isolated.rootDir, 'docker/registry/v2/repositories/docker.io/acme/tampered');
    t.notOk(existsSync(join(repo, '_manifests/revisions/sha256', tampered.manifest.digest.slice(7))), 'the tampered manifest is not linked in');
    t.notOk(existsSync(join(repo, '_manifests/tags/1')), 'nor its tag');
    for (const l of tampered.layers) t.notOk(existsSync(join(repo, '_layers/sha256', l.digest.slice(7))), 'nor its layers');
  });

  await t.test('verify on the isolated side finds every signature offline', async (t) => {
    const r = await runCli(['verify', '--config', isolated.file, '--json', ...names.slice(0, 3)]);
    t.equal(r.code, 0, r.stdout + r.stderr);
    const rows = (JSON.parse(r.stdout) as { images: Array<{ name: string; status: string; signers: Array<{ set: string; form: string }> }> }).images;
    t.match(rows, [
      { name: 'docker.io/acme/signed:1', status: 'signed', signers: [{ set: 'release', form: 'cosign' }] },
      { name: 'docker.io/acme/bundled:1', status: 'signed', signers: [{ set: 'vendor', form: 'bundle' }] },
      { name: 'docker.io/acme/multi:1', status: 'signed', signers: [{ set: 'release', form: 'cosign' }] },
    ]);
  });

  await t.test('the isolated server serves the signed images, checked against held signatures', async (t) => {
    const s = await startStowage({ rootDir: isolated.rootDir, port: isolated.port, config: { upstreams: [{ name: 'docker.io', url: 'https://registry-1.docker.io' }], policy } });
    procs.push(s);
    for (const n of names.slice(0, 3)) t.equal(await status(`${s.url}/v2/${n.replace(':', '/manifests/')}`), 200, n);
    for (const img of multi.images) t.equal(await status(`${s.url}/v2/docker.io/acme/multi/manifests/${img.manifest.digest}`), 200, `platform ${img.platform.architecture}`);
    t.not(await status(`${s.url}/v2/docker.io/acme/tampered/manifests/1`), 200, 'the refused image is not there');
  });
});
