/**
 * The shipped default config where stowage is meant to run: inside a network namespace with only
 * loopback, so Docker Hub (the default upstream) is unreachable: no route, no DNS. Then again
 * with the default upstream pointed at a server that accepts connections and never answers, and
 * once with no upstream at all, for comparison. Pushes of new repositories, local pulls, dockerd,
 * a registry:2 data directory and the kill -9 crash rounds must all work as with no upstream,
 * and nothing may be sent upstream that is not a pull of upstream content.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { crashRounds } from '../helpers/crash.js';
import { startDockerd } from '../helpers/dockerd.js';
import { makeImage, makeIndex, pushBlobHttp, sha256, writeOciLayout, ALL_ACCEPT, type Image, type Index } from '../helpers/image.js';
import { interfaces, isolate } from '../helpers/netns.js';
import { SHIPPED_CONFIG, startRegistry2, startStowageWithFile, type Proc } from '../helpers/procs.js';
import { skopeo, skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.js';
import { missingTools, startBlackhole, type Blackhole } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (network namespace, dockerd)'
  : missingTools('ip', 'nsenter', 'skopeo', 'docker-registry', 'dockerd', 'docker');
isolate(skip);
// tap is loaded only here: the outer process (which only runs this file inside the namespace)
// must print no TAP of its own.
const { default: t } = await import('tap');

const IMAGES: Record<string, Image | Index> = {
  latest: makeImage({ seed: 701, layers: 3, layerSize: 100_000 }),
  twenty: makeImage({ seed: 702, layers: 20, layerSize: 50_000 }),
  multi: makeIndex([
    makeImage({ seed: 703, layers: 2, platform: { architecture: 'amd64', os: 'linux' } }),
    makeImage({ seed: 704, layers: 2, platform: { architecture: 'arm64', os: 'linux' } }),
  ]),
};
/** [layout tag, target]: the README's own example first. */
const PUSHES: Array<[keyof typeof IMAGES, string]> = [['latest', 'team/app:1.0'], ['twenty', 'team/twenty:1'], ['multi', 'team/multi:1']];
const topDigest = (x: Image | Index) => ('images' in x ? x.digest : x.manifest.digest);
const topBytes = (x: Image | Index) => ('images' in x ? x.bytes : x.manifest.bytes);

type Variant = 'no upstream' | 'Docker Hub unreachable' | 'upstream never answers';

/** The shipped config as it is, or with its default upstream changed (url) or removed (null). */
async function configFor(work: string, upstreamUrl: string | null | undefined): Promise<string> {
  if (upstreamUrl === undefined) return SHIPPED_CONFIG;
  const doc = parse(await readFile(SHIPPED_CONFIG, 'utf8')) as Record<string, unknown>;
  if (upstreamUrl === null) {
    delete doc.upstreams;
    delete doc.default_upstream;
  } else {
    (doc.upstreams as Array<Record<string, unknown>>)[0]!.url = upstreamUrl;
  }
  const file = join(work, 'config.yml');
  await writeFile(file, stringify(doc));
  return file;
}

t.test('the namespace has loopback only and Docker Hub is unreachable', async (t) => {
  t.same(interfaces(), ['lo']);
  const err = await fetch('https://registry-1.docker.io/v2/', { signal: AbortSignal.timeout(10_000) }).then(() => undefined, (e: unknown) => e);
  t.ok(err, 'registry-1.docker.io cannot be reached');
});

const pushSeconds: Partial<Record<Variant, number>> = {};

for (const variant of ['no upstream', 'Docker Hub unreachable', 'upstream never answers'] as Variant[]) {
  t.test(`shipped config: ${variant}`, async (t) => {
    const work = await mkdtemp(join(tmpdir(), 'stowage-iso-'));
    let hole: Blackhole | undefined;
    if (variant === 'upstream never answers') {
      hole = await startBlackhole();
      t.teardown(() => hole!.close());
    }
    const config = await configFor(work, variant === 'no upstream' ? null : hole ? hole.url : undefined);
    const upstreamConnections = () => hole?.connections() ?? 0;
    let s: Proc = await startStowageWithFile({ file: config, cwd: work, addr: '127.0.0.1:5000' });
    t.teardown(() => s.stop());
    const host = '127.0.0.1:5000';
    const layout = join(work, 'my-image');
    await writeOciLayout(layout, IMAGES);

    await t.test('skopeo pushes new repositories and copies them back with identical digests', async (t) => {
      const started = process.hrtime.bigint();
      for (const [tag, target] of PUSHES) {
        // the README's example: skopeo copy --dest-tls-verify=false oci:./my-image:latest docker://127.0.0.1:5000/team/app:1.0
        await skopeo(['copy', '--quiet', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${host}/${target}`]);
      }
      pushSeconds[variant] = Number(process.hrtime.bigint() - started) / 1e9;
      t.comment(`pushing the three images took ${pushSeconds[variant]!.toFixed(2)} s (${variant})`);
      for (const [tag, target] of PUSHES) {
        const image = IMAGES[tag]!;
        t.ok((await skopeoInspectRaw(`docker://${host}/${target}`)).equals(topBytes(image)), `${target}: manifest bytes identical`);
        const out = join(work, `out-${tag}`);
        await skopeoCopy(`docker://${host}/${target}`, `oci:${out}:x`);
        const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
        t.equal(index.manifests[0]?.digest, topDigest(image), `${target}: copied out with the same digest`);
      }
      t.equal(upstreamConnections(), 0, 'the upstream was never contacted');
    });

    await t.test('misses in a pushed repository are 404s that cost no upstream request', async (t) => {
      const unknown = sha256(`not here ${variant}`);
      for (const [what, url, code] of [
        ['manifest tag', `/v2/team/app/manifests/nope`, 'MANIFEST_UNKNOWN'],
        ['manifest digest', `/v2/team/app/manifests/${unknown}`, 'MANIFEST_UNKNOWN'],
        ['blob', `/v2/team/app/blobs/${unknown}`, 'BLOB_UNKNOWN'],
      ] as const) {
        const res = await fetch(`${s.url}${url}`, { headers: { accept: ALL_ACCEPT } });
        t.equal(res.status, 404, `${what}: 404`);
        t.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, code, `${what}: ${code}`);
        const head = await fetch(`${s.url}${url}`, { method: 'HEAD', headers: { accept: ALL_ACCEPT } });
        t.equal(head.status, 404, `${what}: HEAD 404`);
      }
      // a blob that was just deleted (deletes need storage.delete.enabled: same file, one override)
      await s.stop();
      s = await startStowageWithFile({ file: config, cwd: work, addr: '127.0.0.1:5000', env: { REGISTRY_STORAGE_DELETE_ENABLED: 'true' } });
      const blob = { bytes: Buffer.from(`deleted soon ${variant}`), digest: sha256(`deleted soon ${variant}`) };
      await pushBlobHttp(s.url, 'team/app', blob);
      t.equal((await fetch(`${s.url}/v2/team/app/blobs/${blob.digest}`, { method: 'DELETE' })).status, 202, 'deleted');
      const gone = await fetch(`${s.url}/v2/team/app/blobs/${blob.digest}`);
      t.equal(gone.status, 404, 'GET of the deleted blob: 404');
      t.equal(((await gone.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'BLOB_UNKNOWN');
      t.equal(upstreamConnections(), 0, 'the upstream was never contacted');
    });

    if (variant !== 'no upstream') {
      await t.test('a digest no cached manifest references is a 404 on every route, never asked upstream', async (t) => {
        const digest = sha256(`probe ${variant}`);
        for (const path of [
          `/v2/docker.io/library/probe/blobs/${digest}`,
          `/v2/library/probe/blobs/${digest}?ns=docker.io`,
          `/v2/library/probe/blobs/${digest}`,
          `/v2/probe/blobs/${digest}`,
        ]) {
          for (const method of ['GET', 'HEAD']) {
            const started = Date.now();
            const res = await fetch(`${s.url}${path}`, { method });
            t.equal(res.status, 404, `${method} ${path}: 404 in ${Date.now() - started} ms`);
          }
        }
        t.equal(upstreamConnections(), 0, 'the upstream was never contacted');
      });
    }

    if (variant === 'Docker Hub unreachable') {
      await t.test('an image pull that must go upstream fails fast with 503', async (t) => {
        const times: number[] = [];
        for (let i = 0; i < 5; i++) {
          const started = Date.now();
          const res = await fetch(`${s.url}/v2/library/alpine/manifests/latest`, { headers: { accept: ALL_ACCEPT } });
          times.push(Date.now() - started);
          t.equal(res.status, 503, `attempt ${i + 1}: 503`);
          t.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNAVAILABLE');
        }
        t.comment(`answer times: ${times.join(', ')} ms`);
      });

      await t.test('dockerd pushes and pulls a local image', async (t) => {
        const dockerd = await startDockerd(join(work, 'dockerd'));
        t.teardown(() => dockerd.stop());
        const archive = join(work, 'readme.tar');
        await skopeo(['copy', '--quiet', `oci:${layout}:latest`, `docker-archive:${archive}:team/docker:1`]);
        dockerd.docker('load', '-i', archive);
        dockerd.docker('tag', 'team/docker:1', `${host}/team/docker:1`);
        dockerd.docker('push', `${host}/team/docker:1`);
        const pushed = JSON.parse(dockerd.docker('image', 'inspect', `${host}/team/docker:1`)) as Array<{ RepoDigests: string[] }>;
        const repoDigest = pushed[0]!.RepoDigests.find((d) => d.startsWith(`${host}/team/docker@`))!;
        t.ok(repoDigest, `pushed as ${repoDigest}`);
        dockerd.docker('rmi', '-f', 'team/docker:1', `${host}/team/docker:1`);
        dockerd.docker('pull', `${host}/team/docker:1`);
        const pulled = JSON.parse(dockerd.docker('image', 'inspect', `${host}/team/docker:1`)) as Array<{ RepoDigests: string[] }>;
        t.ok(pulled[0]!.RepoDigests.includes(repoDigest), 'pulled back with the same digest');
      });

      await t.test('a registry:2 data directory is served', async (t) => {
        const dir = await mkdtemp(join(tmpdir(), 'stowage-iso-r2-'));
        const r2 = await startRegistry2({ rootDir: join(dir, 'data') });
        await skopeoCopy(`oci:${layout}:multi`, `docker://127.0.0.1:${r2.port}/legacy/multi:1`);
        await r2.stop();
        const served = await startStowageWithFile({ file: config, cwd: dir });
        t.teardown(() => served.stop());
        const ref = `docker://127.0.0.1:${served.port}/legacy/multi:1`;
        t.ok((await skopeoInspectRaw(ref)).equals(topBytes(IMAGES.multi!)), 'index identical');
        const out = join(dir, 'out');
        await skopeoCopy(ref, `oci:${out}:x`);
        const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
        t.equal(index.manifests[0]?.digest, topDigest(IMAGES.multi!), 'pulled with the same digest');
      });
    }

    if (variant === 'upstream never answers') {
      await t.test('kill -9 crash rounds', async (t) => {
        await s.stop();
        const dir = await mkdtemp(join(tmpdir(), 'stowage-iso-crash-'));
        await crashRounds(t, join(dir, 'data'), () => startStowageWithFile({ file: config, cwd: dir }));
        t.equal(upstreamConnections(), 0, 'the upstream was never contacted');
      });
    }
  });
}

t.test('push times side by side', async (t) => {
  t.comment(`skopeo push of the three images: ${JSON.stringify(pushSeconds)}`);
  t.equal(Object.keys(pushSeconds).length, 3, 'measured in all three set-ups');
});
