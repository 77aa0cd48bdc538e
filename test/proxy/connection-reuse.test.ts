/**
 * Round trips a cold pull costs upstream, counted at the upstream: a registry with Bearer auth
 * that redirects blob GETs to a CDN on another origin (as Docker Hub does), both node:http. A
 * multi-blob pull through a stowage process reuses one connection to each origin, fetches one
 * token, meets one 401, and a second repository costs no new connection and no 401.
 */
import t from 'tap';
import { makeImage, sha256, type Image } from '../helpers/image.js';
import { startLyingUpstream } from '../helpers/lying-upstream.js';
import { startStowage } from '../helpers/procs.js';
import { startTokenServer } from '../helpers/token-server.js';
import { missingTools } from '../helpers/tools.js';

t.test('a multi-blob cold pull reuses connections to the registry and its CDN', { skip: missingTools('openssl') }, async (t) => {
  const tokens = await startTokenServer();
  const cdn = await startLyingUpstream();
  const registry = await startLyingUpstream({
    redirectTo: cdn.url,
    auth: { challenge: `Bearer realm="${tokens.realm}",service="${tokens.service}"`, accept: (h) => !!h?.startsWith('Bearer ') },
  });
  t.teardown(async () => { await registry.close(); await cdn.close(); await tokens.close(); });
  const publish = (repo: string, image: Image) => {
    registry.manifests.set(`${repo}:v1`, { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType, behaviour: 'good' });
    for (const b of [image.config, ...image.layers]) {
      registry.blobs.set(b.digest, { bytes: b.bytes, behaviour: 'redirect' });
      cdn.blobs.set(b.digest, { bytes: b.bytes, behaviour: 'good' });
    }
  };
  const one = makeImage({ seed: 181, layers: 8, layerSize: 64 * 1024 });
  const two = makeImage({ seed: 182, layers: 8, layerSize: 64 * 1024 });
  publish('org/one', one);
  publish('org/two', two);

  // One client's requests one after another: the connections that needs. Layer prefetch would
  // fetch up to prefetch.concurrency blobs at once, on as many connections (prefetch.test.ts).
  const s = await startStowage({ config: { upstreams: [{ name: 'up.test', url: registry.url, prefetch: { enabled: false } }] } });
  t.teardown(() => s.stop());
  const pull = async (repo: string, image: Image) => {
    const m = await fetch(`${s.url}/v2/up.test/${repo}/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
    t.equal(sha256(Buffer.from(await m.arrayBuffer())), image.manifest.digest);
    for (const b of [image.config, ...image.layers]) {
      const r = await fetch(`${s.url}/v2/up.test/${repo}/blobs/${b.digest}`);
      t.equal(sha256(Buffer.from(await r.arrayBuffer())), b.digest);
    }
  };
  const unauthorized = () => registry.seen.filter((x) => x.status === 401).length;

  await pull('org/one', one);
  t.equal(registry.seen.filter((x) => x.path.includes('/blobs/')).length, 9, 'one registry GET per blob');
  t.equal(cdn.seen.length, 9, 'one CDN GET per blob');
  t.equal(registry.connections(), 1, 'one connection to the registry for the manifest and nine blobs');
  t.equal(cdn.connections(), 1, 'one connection to the CDN for nine redirected blobs');
  t.same(tokens.requests, ['repository:org/one:pull'], 'one token');
  t.equal(unauthorized(), 1, 'one 401: the first request');
  t.ok(cdn.seen.every((x) => x.authorization === undefined), 'the token never went to the CDN');

  await pull('org/two', two);
  t.equal(registry.connections(), 1, 'a second repository: still the one registry connection');
  t.equal(cdn.connections(), 1, '... and the one CDN connection');
  t.equal(unauthorized(), 1, "no 401 for the new repository: its token was fetched before its first request");
  t.same(tokens.requests, ['repository:org/one:pull', 'repository:org/two:pull']);
});
