/**
 * The signature policy against a real upstream: Debian's docker-registry (registry:2, no referrers
 * API, so bundles are found through the referrers tag schema) holding signed, unsigned, wrongly
 * signed (another key) and tampered (a signed payload naming another manifest) images, pulled
 * through stowage (dist/cli.js) under enforce and warn rules, by tag and by digest. An unsigned
 * image never lands in storage under enforce; signatures are kept beside what is admitted;
 * denials and warnings are counted and sent as `policy` events; pushes into a push-checked
 * repository need their signature first; `stowage verify` reports who signed held content; a key
 * file replaced on disk is re-read and every remembered result dropped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import {
  attachBundles, bundleReferrer, classicSignature, dsseBundle, messageBundle, opensslKey, pushArtifact, signatureTag,
} from '../helpers/cosign.js';
import { ALL_ACCEPT, makeImage, makeIndex, pushImageHttp, pushManifestHttp, pushBlobHttp, type Image } from '../helpers/image.js';
import { childEnv, countRegistry2Requests, runCli, startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { freePort, missingTools, sleep, until } from '../helpers/tools.js';

const skip = missingTools('docker-registry', 'openssl');
const RECEIVER = resolve(import.meta.dirname, '../helpers/webhook-receiver.mjs');

const get = async (url: string, method = 'GET') => {
  const r = await fetch(url, { method, headers: { accept: ALL_ACCEPT } });
  const body = Buffer.from(await r.arrayBuffer());
  return { status: r.status, body, json: () => JSON.parse(body.toString()) as { errors: Array<{ code: string; message: string; detail: { problems: string[] } }> } };
};
const blobFile = (root: string, digest: string) => join(root, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');
const metric = async (s: Proc, where: string, outcome: string): Promise<number> => {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = new RegExp(`^stowage_policy_decisions_total\\{where="${where}",outcome="${outcome}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
};

t.test('signature policy on pull-through, push and verify', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-it-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const release = opensslKey(dir, 'release');
  const vendor = opensslKey(dir, 'vendor', 'rsa');
  const other = opensslKey(dir, 'other');
  const releasePub = join(dir, 'release-in-use.pub');
  copyFileSync(release.pub, releasePub);

  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());
  const images: Record<string, Image> = {};
  const seed = async (repo: string, n: number) => {
    const img = makeImage({ seed: n, layers: 1, layerSize: 2000 });
    images[repo] = img;
    await pushImageHttp(r2.url, repo, '1', img);
    return img;
  };
  const subject = (img: Image) => ({ digest: img.manifest.digest, size: img.manifest.bytes.length, mediaType: img.manifest.mediaType });
  const signClassic = async (repo: string, img: Image, keys = [release], payloadDigest?: string) =>
    pushArtifact(r2.url, repo, classicSignature(`docker.io/${repo}`, img.manifest.digest, keys, payloadDigest ? { payloadDigest } : {}), signatureTag(img.manifest.digest));

  await signClassic('acme/signed', await seed('acme/signed', 1001));
  const bundled = await seed('acme/bundled', 1002);
  await attachBundles(r2.url, 'acme/bundled', bundled.manifest.digest, [bundleReferrer(subject(bundled), dsseBundle('docker.io/acme/bundled', bundled.manifest.digest, vendor))]);
  const message = await seed('acme/message', 1003);
  await attachBundles(r2.url, 'acme/message', message.manifest.digest, [bundleReferrer(subject(message), messageBundle(message.manifest.bytes, release))]);
  await seed('acme/unsigned', 1004);
  await signClassic('acme/wrongkey', await seed('acme/wrongkey', 1005), [other]);
  await signClassic('acme/tampered', await seed('acme/tampered', 1006), [release], images['acme/signed']!.manifest.digest);
  const multi = makeIndex([makeImage({ seed: 1007, platform: { architecture: 'amd64', os: 'linux' } }), makeImage({ seed: 1008, platform: { architecture: 'arm64', os: 'linux' } })]);
  await pushImageHttp(r2.url, 'acme/multi', '1', multi);
  await pushArtifact(r2.url, 'acme/multi', classicSignature('docker.io/acme/multi', multi.digest, [release]), signatureTag(multi.digest));
  await seed('warn/unsigned', 1009);
  await signClassic('warn/wrongkey', await seed('warn/wrongkey', 1012), [other]);
  await signClassic('warn/tampered', await seed('warn/tampered', 1013), [release], images['acme/signed']!.manifest.digest);
  await seed('open/free', 1010);

  const hookPort = await freePort();
  const hookFile = join(dir, 'events.jsonl');
  const receiver: ChildProcess = spawn(process.execPath, [RECEIVER, String(hookPort), hookFile], { env: childEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => receiver.stdout!.once('data', r));
  t.teardown(() => { receiver.kill('SIGTERM'); });

  const s = await startStowage({
    config: {
      upstreams: [{ name: 'docker.io', url: r2.url }],
      policy: {
        keys: { release: [releasePub], vendor: [vendor.pub] },
        rules: [
          { repository: 'docker.io/acme/**', mode: 'enforce', keys: ['release', 'vendor'] },
          { repository: 'docker.io/warn/**', mode: 'warn', keys: ['release'] },
          { repository: 'team/**', mode: 'enforce', keys: ['release'], push: true },
        ],
      },
      notifications: { endpoints: [{ name: 'audit', url: `http://127.0.0.1:${hookPort}/events`, backoff: '100ms' }] },
    },
  });
  t.teardown(() => s.stop());
  const v2 = `${s.url}/v2/docker.io`;

  await t.test('signed images are served, by tag and by digest, in both cosign forms', async (t) => {
    for (const repo of ['acme/signed', 'acme/bundled', 'acme/message']) {
      const img = images[repo]!;
      const byTag = await get(`${v2}/${repo}/manifests/1`);
      t.equal(byTag.status, 200, `${repo} by tag`);
      t.ok(byTag.body.equals(img.manifest.bytes), `${repo}: upstream bytes`);
      t.equal((await get(`${v2}/${repo}/manifests/${img.manifest.digest}`)).status, 200, `${repo} by digest`);
      t.equal((await get(`${v2}/${repo}/blobs/${img.layers[0]!.digest}`)).status, 200, `${repo}: its layer`);
    }
    t.equal((await get(`${v2}/open/free/manifests/1`)).status, 200, 'a repository no rule matches is not checked');
    const sig = await get(`${v2}/acme/signed/manifests/${signatureTag(images['acme/signed']!.manifest.digest)}`);
    t.equal(sig.status, 200, 'a signature itself (what cosign verify fetches through the cache) needs no signature');
  });

  await t.test('unsigned, wrongly signed and tampered images are refused and never stored', async (t) => {
    const cases: Array<[string, RegExp]> = [
      ['acme/unsigned', /no signature found/],
      ['acme/wrongkey', /by none of the keys/],
      ['acme/tampered', /the signed payload names sha256:[0-9a-f]{64}, not this manifest/],
    ];
    for (const [repo, problem] of cases) {
      const img = images[repo]!;
      for (const ref of ['1', img.manifest.digest]) {
        const r = await get(`${v2}/${repo}/manifests/${ref}`);
        t.equal(r.status, 403, `${repo}:${ref} refused`);
        const e = r.json().errors[0]!;
        t.equal(e.code, 'DENIED');
        t.equal(e.message, `docker.io/${repo}@${img.manifest.digest}: no signature by a key of sets release or vendor (policy rule 1)`);
        t.match(e.detail.problems.join('\n'), problem, `${repo}: the problem is named`);
      }
      t.equal((await get(`${v2}/${repo}/manifests/1`, 'HEAD')).status, 403, `${repo}: HEAD too`);
      t.notOk(existsSync(blobFile(s.rootDir, img.manifest.digest)), `${repo}: the manifest never landed in storage`);
      t.equal((await get(`${v2}/${repo}/blobs/${img.layers[0]!.digest}`)).status, 404, `${repo}: its layers are not reachable`);
    }
    t.ok(await metric(s, 'fill', 'denied') >= 6, 'denials are counted');
  });

  await t.test('an index must be signed; its platform manifests come with it', async (t) => {
    t.equal((await get(`${v2}/acme/multi/manifests/1`)).status, 200, 'the signed index');
    for (const img of multi.images) t.equal((await get(`${v2}/acme/multi/manifests/${img.manifest.digest}`)).status, 200, `platform ${img.platform.architecture} through the index`);
  });

  await t.test('warn serves, logs, counts and reports', async (t) => {
    for (const repo of ['warn/unsigned', 'warn/wrongkey', 'warn/tampered']) {
      const r = await get(`${v2}/${repo}/manifests/1`);
      t.equal(r.status, 200, `${repo} served`);
      t.ok(r.body.equals(images[repo]!.manifest.bytes));
    }
    await sleep(200);
    const warned = s.logs().filter((l) => l.msg === 'signature policy (warn): let through unsigned' && l.rule === 2).map((l) => l.repo);
    t.same(warned.sort(), ['docker.io/warn/tampered', 'docker.io/warn/unsigned', 'docker.io/warn/wrongkey'], 'each logged with the rule');
    t.equal(await metric(s, 'fill', 'warned'), 3, 'counted');
    await until('policy events delivered', () => existsSync(hookFile) && readFileSync(hookFile, 'utf8').includes('"warned"'), 20_000);
    const events = readFileSync(hookFile, 'utf8').split('\n').filter(Boolean).flatMap((l) => (JSON.parse(l) as { body: { events: Array<{ action: string; target: { repository: string }; stowage?: { policy?: { outcome: string; rule: number } } }> } }).body.events);
    const policy = events.filter((e) => e.action === 'policy');
    t.ok(policy.some((e) => e.target.repository === 'docker.io/warn/unsigned' && e.stowage?.policy?.outcome === 'warned' && e.stowage.policy.rule === 2), 'a warned event');
    t.ok(policy.some((e) => e.target.repository === 'docker.io/acme/unsigned' && e.stowage?.policy?.outcome === 'denied' && e.stowage.policy.rule === 1), 'a denied event');
  });

  await t.test('signatures are kept beside admitted images, and warm pulls ask the upstream nothing', async (t) => {
    const signed = images['acme/signed']!;
    const sigLink = join(s.rootDir, 'docker/registry/v2/repositories/docker.io/acme/signed/_manifests/tags', signatureTag(signed.manifest.digest), 'current/link');
    t.ok(existsSync(sigLink), 'the .sig tag is held in the cache repository');
    const referrers = await (await fetch(`${v2}/acme/bundled/referrers/${images['acme/bundled']!.manifest.digest}`)).json() as { manifests: Array<{ artifactType: string }> };
    t.ok(referrers.manifests.some((m) => m.artifactType === 'application/vnd.dev.sigstore.bundle.v0.3+json'), 'the bundle referrer is held');
    const sigGets = countRegistry2Requests(r2, 'GET', '.sig');
    for (let i = 0; i < 5; i++) t.equal((await get(`${v2}/acme/signed/manifests/${signed.manifest.digest}`)).status, 200);
    await sleep(200);
    t.equal(countRegistry2Requests(r2, 'GET', '.sig'), sigGets, 'verified once, remembered');
  });

  await t.test('pushes into a push-checked repository need their signature first', async (t) => {
    const img = makeImage({ seed: 1011, layers: 1 });
    for (const b of [...img.layers, img.config]) await pushBlobHttp(s.url, 'team/app', b);
    const refused = await fetch(`${s.url}/v2/team/app/manifests/1`, { method: 'PUT', body: img.manifest.bytes, headers: { 'content-type': img.manifest.mediaType } });
    t.equal(refused.status, 403, 'unsigned push refused');
    t.match(((await refused.json()) as { errors: Array<{ message: string }> }).errors[0]!.message, /team\/app@sha256:[0-9a-f]{64}: no signature by a key of set release \(policy rule 3\)/);
    await pushArtifact(s.url, 'team/app', classicSignature('team/app', img.manifest.digest, [release]), signatureTag(img.manifest.digest));
    await pushManifestHttp(s.url, 'team/app', '1', img.manifest.bytes, img.manifest.mediaType);
    t.equal((await get(`${s.url}/v2/team/app/manifests/1`)).status, 200, 'signed push accepted and served');
    t.equal(await metric(s, 'push', 'denied'), 1);

    const loose = makeImage({ seed: 1014, layers: 1 });
    for (const b of [...loose.layers, loose.config]) await pushBlobHttp(s.url, 'team/app', b);
    await pushManifestHttp(s.url, 'team/app', loose.manifest.digest, loose.manifest.bytes, loose.manifest.mediaType);
    t.equal((await get(`${s.url}/v2/team/app/manifests/${loose.manifest.digest}`)).status, 403, 'a push by digest is let in, but not served unsigned');

    const platforms = makeIndex([makeImage({ seed: 1015, platform: { architecture: 'amd64', os: 'linux' } }), makeImage({ seed: 1016, platform: { architecture: 'arm64', os: 'linux' } })]);
    await pushArtifact(s.url, 'team/multi', classicSignature('team/multi', platforms.digest, [release]), signatureTag(platforms.digest));
    await pushImageHttp(s.url, 'team/multi', '1', platforms); // platform manifests by digest first, then the signed index by tag
    t.equal((await get(`${s.url}/v2/team/multi/manifests/1`)).status, 200, 'a signed multi-platform push');
    for (const img of platforms.images) t.equal((await get(`${s.url}/v2/team/multi/manifests/${img.manifest.digest}`)).status, 200, `its ${img.platform.architecture} manifest, through the index`);
  });

  await t.test('stowage verify reports the rule and the signers of held content', async (t) => {
    const r = await runCli(['verify', '--config', s.configFile!, '--json', 'docker.io/acme/signed:1', 'docker.io/acme/bundled:1', 'docker.io/acme/unsigned:1']);
    t.equal(r.code, 1, 'exit 1: one image is not held');
    const report = JSON.parse(r.stdout) as { images: Array<{ name: string; status?: string; error?: string; rule?: { number: number }; signers?: Array<{ set: string; form: string; file: string }> }> };
    const [signed, bundledRow, unsigned] = report.images;
    t.match(signed, { name: 'docker.io/acme/signed:1', status: 'signed', rule: { number: 1 }, signers: [{ set: 'release', form: 'cosign', file: releasePub }] });
    t.match(bundledRow, { status: 'signed', signers: [{ set: 'vendor', form: 'bundle' }] });
    t.match(unsigned, { error: 'not held in storage' });
    const table = await runCli(['verify', '--config', s.configFile!, 'docker.io/acme/multi:1']);
    t.equal(table.code, 0, table.stderr);
    t.match(table.stdout, /docker\.io\/acme\/multi:1 .* 1: docker\.io\/acme\/\*\* \(enforce\) .* signed .* release: /);
  });

  await t.test('a key file changed on disk is re-read and remembered results dropped', async (t) => {
    const url = `${v2}/acme/signed/manifests/1`;
    copyFileSync(other.pub, releasePub);
    let status = 0;
    for (let i = 0; i < 50 && status !== 403; i++) { await sleep(200); status = (await get(url)).status; }
    t.equal(status, 403, 'the old release key no longer admits the image');
    copyFileSync(release.pub, releasePub);
    for (let i = 0; i < 50 && status !== 200; i++) { await sleep(200); status = (await get(url)).status; }
    t.equal(status, 200, 'and the restored key does again');
    await sleep(200);
    t.ok(s.logs().some((l) => l.msg === 'signature policy key file reloaded'), 'the reload is logged');
  });

  await t.test('with the upstream down, held signatures still decide; what cannot be checked is 503', async (t) => {
    await r2.stop();
    t.equal((await get(`${v2}/acme/signed/manifests/1`)).status, 200, 'a remembered result');
    t.equal((await get(`${v2}/warn/unsigned/manifests/1`)).status, 200, 'warn: served although the upstream cannot be asked');
    copyFileSync(other.pub, releasePub); // drops every remembered result; the held .sig no longer verifies
    let r = await get(`${v2}/acme/signed/manifests/1`);
    for (let i = 0; i < 50 && r.status === 200; i++) { await sleep(200); r = await get(`${v2}/acme/signed/manifests/1`); }
    t.equal(r.status, 503, 'not a 403: the upstream, which might hold another signature, could not be asked');
    t.match(r.json().errors[0]!.message, /signatures could not be checked: upstream docker\.io could not be asked .* \(policy rule 1\)/);
    copyFileSync(release.pub, releasePub);
    for (let i = 0; i < 50 && r.status !== 200; i++) { await sleep(200); r = await get(`${v2}/acme/signed/manifests/1`); }
    t.equal(r.status, 200, 'the signature held in storage verifies offline');
    t.ok(await metric(s, 'serve', 'unavailable') >= 1, 'counted');
  });
});
