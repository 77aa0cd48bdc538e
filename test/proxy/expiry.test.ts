/**
 * registry:2's proxy.ttl: cached content not read for longer than the TTL is removed and fetched
 * again on the next request; pushed content never expires.
 */
import t from 'tap';
import { prngBytes, pushBlobHttp, sha256 } from '../helpers/image.js';
import { startLyingUpstream } from '../helpers/lying-upstream.js';
import { startStowage } from '../helpers/procs.js';
import { sleep } from '../helpers/tools.js';

t.test('cached content expires after the proxy ttl; pushed content does not', async (t) => {
  const up = await startLyingUpstream();
  t.teardown(() => up.close());
  const cached = prngBytes(1, 100_000);
  const pushed = prngBytes(2, 100_000);
  up.blobs.set(sha256(cached), { bytes: cached, behaviour: 'good' });
  up.blobs.set(sha256(pushed), { bytes: pushed, behaviour: 'good' });
  const s = await startStowage({ config: { proxy: { remoteurl: up.url, ttl: '2s' } } });
  t.teardown(() => s.stop());
  const get = async (digest: string) => sha256(Buffer.from(await (await fetch(`${s.url}/v2/org/app/blobs/${digest}`)).arrayBuffer()));
  up.publishImage('org/app', 'v1', [{ digest: sha256(cached), size: cached.length }, { digest: sha256(pushed), size: pushed.length }]);
  t.equal((await fetch(`${s.url}/v2/org/app/manifests/v1`)).status, 200, 'the manifest referencing both blobs is cached');

  t.equal(await get(sha256(cached)), sha256(cached));
  t.equal(await get(sha256(pushed)), sha256(pushed));
  await pushBlobHttp(s.url, 'mine/app', { bytes: pushed, digest: sha256(pushed) }); // now also local
  t.equal(up.requests(`/blobs/${sha256(cached)}`), 1);
  t.equal(await get(sha256(cached)), sha256(cached), 'within the ttl: from the cache');
  t.equal(up.requests(`/blobs/${sha256(cached)}`), 1, 'no second upstream GET within the ttl');
  await sleep(3500);
  t.ok(s.logs().some((l) => l.msg === 'expired cached content (proxy ttl)'), 'the sweep ran');
  t.equal(await get(sha256(cached)), sha256(cached), 'after the ttl: still served');
  t.equal(up.requests(`/blobs/${sha256(cached)}`), 2, 'fetched again from the upstream');
  const local = await fetch(`${s.url}/v2/mine/app/blobs/${sha256(pushed)}`);
  t.equal(local.status, 200, 'the pushed copy never expires');
  t.equal(sha256(Buffer.from(await local.arrayBuffer())), sha256(pushed));
});
