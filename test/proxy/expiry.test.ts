/**
 * registry:2's proxy.ttl: a cached image not pulled for longer than the TTL is removed (manifest,
 * tag, and the blobs nothing else needs) and fetched again on the next pull; pushed content never
 * expires; and a blob another, still used image shares is never deleted (registry:2's #2367).
 */
import t from 'tap';
import { prngBytes, pushBlobHttp, sha256, ALL_ACCEPT } from '../helpers/image.js';
import { startLyingUpstream } from '../helpers/lying-upstream.js';
import { startStowage } from '../helpers/procs.js';
import { sleep } from '../helpers/tools.js';

t.test('cached images expire after the proxy ttl; pushed and shared content does not', async (t) => {
  const up = await startLyingUpstream();
  t.teardown(() => up.close());
  const cached = prngBytes(1, 100_000);
  const pushed = prngBytes(2, 100_000);
  const shared = prngBytes(3, 100_000);
  for (const b of [cached, pushed, shared]) up.blobs.set(sha256(b), { bytes: b, behaviour: 'good' });
  const s = await startStowage({ config: { proxy: { remoteurl: up.url, ttl: '2s' } } });
  t.teardown(() => s.stop());
  const manifest = async (repo: string) => (await fetch(`${s.url}/v2/${repo}/manifests/v1`, { headers: { accept: ALL_ACCEPT } })).status;
  const get = async (repo: string, digest: string) => sha256(Buffer.from(await (await fetch(`${s.url}/v2/${repo}/blobs/${digest}`)).arrayBuffer()));
  const layer = (b: Buffer) => ({ digest: sha256(b), size: b.length });
  up.publishImage('org/app', 'v1', [layer(cached), layer(pushed), layer(shared)]);
  up.publishImage('org/other', 'v1', [layer(shared)]);
  t.equal(await manifest('org/app'), 200, 'the manifest referencing the blobs is cached');
  t.equal(await manifest('org/other'), 200);

  for (const b of [cached, pushed, shared]) t.equal(await get('org/app', sha256(b)), sha256(b));
  t.equal(await get('org/other', sha256(shared)), sha256(shared), 'the shared blob is served to the other image from the cache');
  await pushBlobHttp(s.url, 'mine/app', { bytes: pushed, digest: sha256(pushed) }); // now also local
  t.equal(up.requests(`/blobs/${sha256(cached)}`), 1);
  t.equal(up.requests(`/blobs/${sha256(shared)}`), 1);
  t.equal(await get('org/app', sha256(cached)), sha256(cached), 'within the ttl: from the cache');
  t.equal(up.requests(`/blobs/${sha256(cached)}`), 1, 'no second upstream GET within the ttl');
  // org/other is pulled all along; org/app is not.
  for (let i = 0; i < 10; i++) {
    await sleep(500);
    t.equal(await manifest('org/other'), 200);
    t.equal(await get('org/other', sha256(shared)), sha256(shared));
  }
  t.ok(s.logs().some((l) => l.msg === 'expired cached content (proxy ttl)'), 'the sweep ran');
  t.equal(up.requests(`/blobs/${sha256(shared)}`), 1, 'the blob the used image shares was never deleted');
  const manifestGets = up.requests('/manifests/v1');
  t.equal(await manifest('org/app'), 200, 'after the ttl the image pulls again');
  t.ok(up.requests('/manifests/v1') > manifestGets, 'its manifest came from the upstream again');
  t.equal(await get('org/app', sha256(cached)), sha256(cached), 'and its blob');
  t.equal(up.requests(`/blobs/${sha256(cached)}`), 2, 'fetched again from the upstream');
  const local = await fetch(`${s.url}/v2/mine/app/blobs/${sha256(pushed)}`);
  t.equal(local.status, 200, 'the pushed copy never expires');
  t.equal(sha256(Buffer.from(await local.arrayBuffer())), sha256(pushed));
});
