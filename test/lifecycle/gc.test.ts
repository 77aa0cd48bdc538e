/**
 * `stowage gc` against a real server's data directory, while that server runs: what it removes
 * (untagged manifests, their unique blobs, orphan uploads' blobs), what it keeps (tagged images,
 * shared layers, referrers, anything inside the grace period), the dry run; then many rounds of
 * pushes racing collections passes back to back: every acknowledged image stays complete.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { imageFromLayers, makeImage, makeReferrer, pushBlobHttp, pushManifestHttp, sha256, ALL_ACCEPT, type Blob, type Image } from '../helpers/image.js';
import { loadConfig } from '../../src/config/load.js';
import { GarbageCollector } from '../../src/lifecycle/gc.js';
import { BlobSweeper } from '../../src/lifecycle/sweep.js';
import { createLogger } from '../../src/log.js';
import { createServices } from '../../src/main.js';
import { runCli, startStowage, type Proc } from '../helpers/procs.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('skopeo');
const json = (s: string) => JSON.parse(s) as any;
const blobFile = (p: Proc, digest: string) => join(p.rootDir, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');

const imageOf = imageFromLayers;

/** A client's push: blobs the registry says it has are not sent again; then the manifest. */
async function push(base: string, repo: string, tag: string, img: Image): Promise<number> {
  for (const b of [...img.layers, img.config]) {
    const head = await fetch(`${base}/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' });
    if (head.status !== 200) await pushBlobHttp(base, repo, b);
  }
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: img.manifest.bytes, headers: { 'content-type': img.manifest.mediaType } });
  await res.arrayBuffer();
  return res.status;
}

/** The image as a client sees it: the tag names it and every blob is there, byte for byte. */
async function complete(base: string, repo: string, tag: string, img: Image): Promise<string[]> {
  const problems: string[] = [];
  const m = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { accept: ALL_ACCEPT } });
  const bytes = Buffer.from(await m.arrayBuffer());
  if (m.status !== 200 || sha256(bytes) !== img.manifest.digest) problems.push(`manifest: ${m.status}`);
  for (const b of [...img.layers, img.config]) {
    const r = await fetch(`${base}/v2/${repo}/blobs/${b.digest}`);
    const body = Buffer.from(await r.arrayBuffer());
    if (r.status !== 200 || sha256(body) !== b.digest) problems.push(`${b.digest}: ${r.status}`);
  }
  return problems;
}

t.test('gc removes what no tag reaches and keeps the rest', { skip }, async (t) => {
  const server = await startStowage();
  t.teardown(() => server.stop());
  const shared = makeImage({ seed: 61, layers: 1, layerSize: 5000 }).layers[0]!;
  const unique = makeImage({ seed: 62, layers: 1, layerSize: 5000 }).layers[0]!;
  const v1 = imageOf(63, [shared, unique]);
  const v2 = imageOf(64, [shared]);
  t.equal(await push(server.url, 'team/app', 'latest', v1), 201);
  t.equal(await push(server.url, 'team/app', 'latest', v2), 201, 'the tag moves: v1 is untagged now');
  const sig = makeReferrer(v2.manifest, 2);
  for (const b of [sig.config, ...sig.layers]) await pushBlobHttp(server.url, 'team/app', b);
  await pushManifestHttp(server.url, 'team/app', sig.manifest.digest, sig.manifest.bytes, sig.manifest.mediaType);
  const orphan = makeImage({ seed: 65, layers: 1, layerSize: 3000 }).layers[0]!;
  await pushBlobHttp(server.url, 'team/other', orphan);

  const graced = await runCli(['gc', '--config', server.configFile!, '--delete-untagged', '--json']);
  t.equal(graced.code, 0, graced.stderr);
  t.match(json(graced.stdout), { manifests: [], blobs: 0 }, 'within the default grace period nothing goes');

  const dry = await runCli(['gc', '--config', server.configFile!, '--delete-untagged', '--grace', '0s', '--dry-run', '--json']);
  t.equal(dry.code, 0, dry.stderr);
  t.same(json(dry.stdout).manifests, [{ repo: 'team/app', digest: v1.manifest.digest }], 'the dry run names v1');
  t.ok(existsSync(blobFile(server, unique.digest)), 'the dry run removed nothing');

  const real = await runCli(['gc', '--config', server.configFile!, '--delete-untagged', '--grace', '0s']);
  t.equal(real.code, 0, real.stderr);
  t.match(real.stdout, new RegExp(`removed manifest team/app@${v1.manifest.digest}`));
  t.match(real.stdout, /manifests\s+blobs\s+bytes freed/);
  const byDigest = await fetch(`${server.url}/v2/team/app/manifests/${v1.manifest.digest}`, { headers: { accept: ALL_ACCEPT } });
  await byDigest.arrayBuffer();
  t.equal(byDigest.status, 404, 'v1 is gone');
  for (const [what, d, kept] of [['v1 manifest bytes', v1.manifest.digest, false], ['v1-only layer', unique.digest, false], ['v1 config', v1.config.digest, false],
    ['orphan upload', orphan.digest, false], ['shared layer', shared.digest, true], ['v2 config', v2.config.digest, true],
    ['signature blob', sig.layers[0]!.digest, true], ['signature manifest', sig.manifest.digest, true]] as const) {
    t.equal(existsSync(blobFile(server, d)), kept, `${what} ${kept ? 'kept' : 'removed'}`);
  }
  t.same(await complete(server.url, 'team/app', 'latest', v2), [], 'v2 complete');
  await skopeoCopy(`docker://127.0.0.1:${server.port}/team/app:latest`, `dir:${join(server.rootDir, '..', `gc-v2-${server.port}`)}`);
  const referrers = await (await fetch(`${server.url}/v2/team/app/referrers/${v2.manifest.digest}`)).json() as any;
  t.same(referrers.manifests.map((m: any) => m.digest), [sig.manifest.digest], 'the referrer of a tagged image stays');
  const again = await runCli(['gc', '--config', server.configFile!, '--delete-untagged', '--grace', '0s', '--json']);
  t.match(json(again.stdout), { manifests: [], blobs: 0 }, 'a second run finds nothing');
});

/** A short grace: what a push uploaded stays while the push goes on; older garbage goes at once. */
const GRACE_MS = 300;

t.test('pushes racing gc passes back to back: every acknowledged image complete', { skip, timeout: 600_000 }, async (t) => {
  const server = await startStowage();
  t.teardown(() => server.stop());
  // The collector loops back to back beside the server, in this process (as `stowage gc` would run
  // it, without a process start per pass), so passes overlap pushes at every step of a push.
  const config = loadConfig({ file: server.configFile!, env: {} });
  const log = createLogger({ level: 'silent', fields: {} });
  const services = await createServices(config, log);
  const gc = new GarbageCollector(services.registry, services.metadata, new BlobSweeper(services.registry, services.metadata, log), log);
  let stop = false;
  let passes = 0;
  let removed = 0;
  const collecting = (async () => {
    while (!stop) {
      const r = await gc.run({ dryRun: false, deleteUntagged: true, graceMs: GRACE_MS });
      passes++;
      removed += r.blobs;
      await sleep(1);
    }
  })();
  t.teardown(async () => { stop = true; await collecting; await services.close(); });

  const ROUNDS = Number(process.env.GC_RACE_ROUNDS ?? 30);
  const REPOS = ['race/a', 'race/b', 'race/c', 'race/d'];
  const base = makeImage({ seed: 70, layers: 1, layerSize: 20_000 }).layers[0]!;
  const previous = new Map<string, Blob>();
  let acknowledged = 0;
  let refused = 0;
  /** A client's retry: a blob went between its HEAD and its PUT, it is told so and pushes again. */
  const pushUntilAcknowledged = async (base: string, repo: string, img: Image) => {
    for (let attempt = 0; attempt < 20; attempt++) {
      if ((await push(base, repo, 'latest', img)) === 201) return;
      refused++;
    }
    throw new Error(`${repo}: push refused 20 times`);
  };
  for (let round = 0; round < ROUNDS; round++) {
    await Promise.all(REPOS.map(async (repo, i) => {
      // The tag moves to a placeholder: the previous image, and the layer only it had, are
      // garbage now; the next image reuses exactly that layer while gc is removing it.
      await pushUntilAcknowledged(server.url, repo, imageOf(5000 + round * 10 + i, [base]));
      // Long enough for the old layer to pass the grace period: gc may take it at any moment now.
      await sleep(GRACE_MS + Math.floor(Math.random() * 300));
      const fresh = makeImage({ seed: 1000 + round * 10 + i, layers: 1, layerSize: 20_000 }).layers[0]!;
      const img = imageOf(2000 + round * 10 + i, [base, ...(previous.has(repo) ? [previous.get(repo)!] : []), fresh]);
      await pushUntilAcknowledged(server.url, repo, img);
      acknowledged++;
      previous.set(repo, fresh);
      const problems = await complete(server.url, repo, 'latest', img);
      if (problems.length > 0) t.fail(`round ${round} ${repo}: acknowledged image incomplete: ${problems.join(', ')}`);
    }));
  }
  stop = true;
  await collecting;
  t.equal(acknowledged, ROUNDS * REPOS.length, `${acknowledged} pushes acknowledged, ${refused} refused and retried, ${passes} gc passes removed ${removed} blobs`);
  t.ok(removed > ROUNDS, 'gc removed garbage all along');
  const final = await gc.run({ dryRun: false, deleteUntagged: true, graceMs: 0 });
  t.ok(final.manifests.length >= 0);
  for (const repo of REPOS) {
    const img = await fetch(`${server.url}/v2/${repo}/manifests/latest`, { method: 'HEAD', headers: { accept: ALL_ACCEPT } });
    t.equal(img.status, 200, `${repo} still tagged after a last pass`);
  }
});
