/**
 * Pull-through against real upstreams: Debian's docker-registry (registry:2) and a second stowage.
 * Routing, caching, tag TTL and revalidation, stale serving with the upstream stopped, local
 * pushes beside and over cached content. Upstream requests are counted in registry:2's access log.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ALL_ACCEPT, makeImage, makeIndex, pushImageHttp, sha256, writeOciLayout, OCI_MANIFEST } from '../helpers/image.js';
import { countRegistry2Requests, startRegistry2, startStowage } from '../helpers/procs.js';
import { skopeoCopy, skopeoInspectRaw } from '../helpers/skopeo.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('skopeo', 'docker-registry');

const alpine = makeImage({ seed: 21, layers: 2, layerSize: 100_000 });
const multi = makeIndex([
  makeImage({ seed: 22, layers: 2, platform: { architecture: 'amd64', os: 'linux' } }),
  makeImage({ seed: 23, layers: 1, platform: { architecture: 'arm64', os: 'linux' } }),
]);
const appImage = makeImage({ seed: 24, layers: 1 });

const get = async (url: string, init: RequestInit = {}) => {
  const r = await fetch(url, { ...init, headers: { accept: ALL_ACCEPT, ...(init.headers ?? {}) } });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
};

t.test('pull-through cache', { skip }, async (t) => {
  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());
  await pushImageHttp(r2.url, 'library/alpine', '3', alpine);
  await pushImageHttp(r2.url, 'library/multi', 'latest', multi);
  const second = await startStowage();
  t.teardown(() => second.stop());
  await pushImageHttp(second.url, 'org/app', '1.0', appImage);

  const s = await startStowage({
    config: {
      upstreams: [
        { name: 'docker.io', url: r2.url, tag_ttl: '1h' },
        { name: 'second.test', url: second.url },
        { name: 'ttl.test', url: r2.url, tag_ttl: '1s', revalidate_timeout: '1s', circuit_breaker: { failures: 100 } },
      ],
      default_upstream: 'docker.io',
      // Outcomes and upstream counts per client request (prefetch.test.ts covers prefetch).
      prefetch: { enabled: false },
    },
  });
  t.teardown(() => s.stop());
  const host = `127.0.0.1:${s.port}`;
  const blobGets = () => countRegistry2Requests(r2, 'GET', '/blobs/');
  const manifestReqs = () => countRegistry2Requests(r2, 'GET', '/manifests/') + countRegistry2Requests(r2, 'HEAD', '/manifests/');

  await t.test('prefix, ns, default upstream and library/ share one cache', async (t) => {
    const urls = [
      `${s.url}/v2/docker.io/library/alpine/manifests/3`,
      `${s.url}/v2/library/alpine/manifests/3?ns=docker.io`,
      `${s.url}/v2/library/alpine/manifests/3`,
      `${s.url}/v2/alpine/manifests/3`,
    ];
    for (const url of urls) {
      const r = await get(url);
      t.equal(r.status, 200, url);
      t.ok(r.body.equals(alpine.manifest.bytes), `${url}: upstream bytes`);
      t.equal(r.headers.get('docker-content-digest'), alpine.manifest.digest);
    }
    t.equal((await get(urls[1]!)).headers.get('oci-namespace'), 'docker.io', 'OCI-Namespace answers an ns request');
    t.equal(countRegistry2Requests(r2, 'GET', '/v2/library/alpine/manifests/3'), 1, 'one upstream manifest GET for all four routes');
    const layer = alpine.layers[0]!;
    for (const prefix of ['docker.io/library/alpine', 'library/alpine', 'alpine']) {
      const r = await get(`${s.url}/v2/${prefix}/blobs/${layer.digest}`);
      t.equal(sha256(r.body), layer.digest, `blob via ${prefix}`);
    }
    const r = await get(`${s.url}/v2/library/alpine/blobs/${layer.digest}?ns=docker.io`);
    t.equal(sha256(r.body), layer.digest, 'blob via ns');
    t.equal(countRegistry2Requests(r2, 'GET', `/blobs/${layer.digest}`), 1, 'one upstream blob GET for every route');
    await sleep(200); // log lines travel through a pipe
    const logged = s.logs().filter((l) => l.reference === layer.digest).map((l) => l.cache);
    t.same(logged, ['miss', 'hit', 'hit', 'hit'], 'request log says miss then hit');
  });

  await t.test('an ns naming an unconfigured registry is refused', async (t) => {
    const before = manifestReqs();
    const r = await get(`${s.url}/v2/library/alpine/manifests/3?ns=evil.example.com`);
    t.equal(r.status, 404);
    t.equal(JSON.parse(r.body.toString()).errors[0].code, 'MANIFEST_UNKNOWN');
    const b = await get(`${s.url}/v2/library/alpine/blobs/${alpine.layers[1]!.digest}?ns=127.0.0.1:1`);
    t.equal(b.status, 404, 'blob through an unknown ns is not fetched');
    t.equal(manifestReqs(), before, 'no upstream was contacted');
  });

  await t.test('manifests by digest are fetched once and never asked again', async (t) => {
    const url = `${s.url}/v2/library/multi/manifests/${multi.images[0]!.manifest.digest}`;
    for (let i = 0; i < 3; i++) t.equal((await get(url)).status, 200);
    t.equal(countRegistry2Requests(r2, 'GET', `/manifests/${multi.images[0]!.manifest.digest}`), 1);
  });

  await t.test('skopeo pulls a multi-arch index through stowage, digests identical', async (t) => {
    const raw = await skopeoInspectRaw(`docker://${host}/docker.io/library/multi:latest`);
    t.ok(raw.equals(multi.bytes), 'the index is stored whole, byte for byte');
    const out = await mkdtemp(join(tmpdir(), 'pt-'));
    await skopeoCopy(`docker://${host}/library/multi:latest`, `oci:${out}:x`);
    const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    t.equal(idx.manifests[0]!.digest, multi.digest);
    for (const img of multi.images) {
      for (const l of img.layers) t.equal(sha256(await readFile(join(out, 'blobs/sha256', l.digest.slice(7)))), l.digest);
    }
  });

  await t.test('a second stowage as the upstream', async (t) => {
    const out = await mkdtemp(join(tmpdir(), 'pt2-'));
    await skopeoCopy(`docker://${host}/second.test/org/app:1.0`, `oci:${out}:x`);
    const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    t.equal(idx.manifests[0]!.digest, appImage.manifest.digest);
    t.same(await (await fetch(`${s.url}/v2/second.test/org/app/tags/list`)).json(), { name: 'second.test/org/app', tags: ['1.0'] });
  });

  await t.test('referrers merge the local index with the upstream\'s', async (t) => {
    const emptyConfig = { bytes: Buffer.from('{}'), digest: sha256('{}') };
    const artifact = (n: number, subject: { digest: string; bytes: Buffer }) => Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: `application/vnd.example.${n}`,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyConfig.digest, size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyConfig.digest, size: 2 }],
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.length },
    }));
    const { pushBlobHttp, pushManifestHttp } = await import('../helpers/image.js');
    const upstreamSig = artifact(1, appImage.manifest);
    await pushBlobHttp(second.url, 'org/app', emptyConfig);
    await pushManifestHttp(second.url, 'org/app', sha256(upstreamSig), upstreamSig, OCI_MANIFEST);
    const localSig = artifact(2, appImage.manifest);
    await pushBlobHttp(s.url, 'second.test/org/app', emptyConfig);
    await pushManifestHttp(s.url, 'second.test/org/app', sha256(localSig), localSig, OCI_MANIFEST);
    const r = await fetch(`${s.url}/v2/second.test/org/app/referrers/${appImage.manifest.digest}`);
    t.equal(r.status, 200);
    const doc = (await r.json()) as { manifests: Array<{ digest: string; artifactType: string }> };
    t.same(doc.manifests.map((m) => m.digest).sort(), [sha256(upstreamSig), sha256(localSig)].sort(), 'local and upstream referrers');
    const filtered = (await (await fetch(`${s.url}/v2/second.test/org/app/referrers/${appImage.manifest.digest}?artifactType=application/vnd.example.1`)).json()) as typeof doc;
    t.same(filtered.manifests.map((m) => m.digest), [sha256(upstreamSig)], 'artifactType filter applies to both');
  });

  await t.test('tag TTL: zero upstream requests within it, one HEAD and no GET after it', async (t) => {
    const url = `${s.url}/v2/ttl.test/library/alpine/manifests/3`;
    t.equal((await get(url)).status, 200);
    const heads = () => countRegistry2Requests(r2, 'HEAD', '/v2/library/alpine/manifests/3');
    const gets = () => countRegistry2Requests(r2, 'GET', '/v2/library/alpine/manifests/3');
    const [h0, g0] = [heads(), gets()];
    for (let i = 0; i < 5; i++) t.equal((await get(url)).status, 200);
    t.same([heads() - h0, gets() - g0], [0, 0], 'within the TTL: no upstream request');
    await sleep(1200);
    t.equal((await get(url)).status, 200);
    t.same([heads() - h0, gets() - g0], [1, 0], 'after the TTL: one HEAD, no GET (unchanged)');
    // the tag moves upstream: the next revalidation fetches the new manifest by digest
    const moved = makeImage({ seed: 25, layers: 1 });
    await pushImageHttp(r2.url, 'library/alpine', '3', moved);
    await sleep(1200);
    const r = await get(url);
    t.equal(r.headers.get('docker-content-digest'), moved.manifest.digest, 'new digest served after the TTL');
    t.equal(countRegistry2Requests(r2, 'GET', `/manifests/${moved.manifest.digest}`), 1, 'fetched by digest');
    t.equal((await get(`${s.url}/v2/docker.io/library/alpine/manifests/3`)).headers.get('docker-content-digest'), alpine.manifest.digest,
      'the 1h-TTL upstream still serves its cached answer');
  });

  await t.test('negative cache: an upstream 404 for a tag is remembered', async (t) => {
    const before = countRegistry2Requests(r2, 'GET', '/v2/library/alpine/manifests/nope');
    for (let i = 0; i < 5; i++) t.equal((await get(`${s.url}/v2/library/alpine/manifests/nope`)).status, 404);
    t.equal(countRegistry2Requests(r2, 'GET', '/v2/library/alpine/manifests/nope') - before, 1, 'one upstream request for five misses');
  });

  await t.test('local pushes beside cached content; a pushed tag shadows the upstream', async (t) => {
    const mine = makeImage({ seed: 26, layers: 1 });
    await pushImageHttp(s.url, 'library/alpine', '3', mine);
    t.equal((await get(`${s.url}/v2/library/alpine/manifests/3`)).headers.get('docker-content-digest'), mine.manifest.digest, 'local tag wins');
    const warning = s.logs().find((l) => l.level === 'warn' && l.repo === 'library/alpine' && l.cacheRepo === 'docker.io/library/alpine');
    t.ok(warning, 'the push that made library/alpine local, hiding cached content of the default upstream, was logged as a warning');
    await pushImageHttp(r2.url, 'library/alpine', 'edge', alpine);
    t.equal((await get(`${s.url}/v2/library/alpine/manifests/edge`)).status, 404, 'the pushed repository is local: a tag only the upstream has is a 404');
    t.equal(countRegistry2Requests(r2, 'GET', '/manifests/edge') + countRegistry2Requests(r2, 'HEAD', '/manifests/edge'), 0, 'and the upstream was not asked');
    t.equal((await get(`${s.url}/v2/docker.io/library/alpine/manifests/edge`)).status, 200, 'the prefix route still reaches it');
    t.equal((await get(`${s.url}/v2/docker.io/library/alpine/manifests/3`)).headers.get('docker-content-digest'), alpine.manifest.digest,
      'the upstream image is still reachable by prefix');
    await pushImageHttp(s.url, 'team/tool', 'v1', mine);
    t.equal((await get(`${s.url}/v2/team/tool/manifests/v1`)).status, 200, 'a purely local repository');
    const catalog = (await (await fetch(`${s.url}/v2/_catalog`)).json()) as { repositories: string[] };
    for (const r of ['docker.io/library/alpine', 'docker.io/library/multi', 'library/alpine', 'team/tool']) t.ok(catalog.repositories.includes(r), `catalog lists ${r}`);
    t.same(await (await fetch(`${s.url}/v2/docker.io/library/alpine/tags/list`)).json(), { name: 'docker.io/library/alpine', tags: ['3', 'edge'] });
  });

  await t.test('upstream stopped: cached tags and digests still pull, stale tags say so', async (t) => {
    await r2.stop();
    await sleep(1200); // let the 1s tag TTL of ttl.test run out: the next request must revalidate
    const byDigest = await get(`${s.url}/v2/docker.io/library/alpine/manifests/${alpine.manifest.digest}`);
    t.equal(byDigest.status, 200, 'digest from cache');
    const started = Date.now();
    const stale = await get(`${s.url}/v2/ttl.test/library/alpine/manifests/3`);
    const ms = Date.now() - started;
    t.equal(stale.status, 200, 'stale tag served');
    t.match(stale.headers.get('warning') ?? '', /110/, 'Warning: 110 on a stale answer');
    t.ok(ms < 5000, `served within the revalidation deadline (${ms} ms)`);
    const blob = await get(`${s.url}/v2/docker.io/library/alpine/blobs/${alpine.layers[0]!.digest}`);
    t.equal(sha256(blob.body), alpine.layers[0]!.digest, 'cached blob');
    // library/alpine holds a push (above), so it is local: the upstream's blob is not served under it
    const local = await get(`${s.url}/v2/library/alpine/blobs/${alpine.layers[0]!.digest}`);
    t.equal(local.status, 404, 'a pushed repository does not serve the default upstream\'s blobs');
    const out = await mkdtemp(join(tmpdir(), 'pt3-'));
    await skopeoCopy(`docker://${host}/library/multi:latest`, `oci:${out}:x`);
    t.pass('skopeo pulls the whole multi-arch image with the upstream down');
    const nothing = await get(`${s.url}/v2/library/never-pulled/manifests/1`);
    t.equal(nothing.status, 503, 'nothing cached and upstream down: 503');
    t.equal(JSON.parse(nothing.body.toString()).errors[0].code, 'UNAVAILABLE');
  });
});
