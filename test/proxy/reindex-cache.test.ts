/**
 * Deleting the index loses nothing, and cached tags stay cached tags: after a rebuild from
 * storage they are revalidated against the upstream (one HEAD), not mistaken for pushed tags.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { sha256 } from '../helpers/image.js';
import { startLyingUpstream } from '../helpers/lying-upstream.js';
import { startStowage } from '../helpers/procs.js';
import { sleep } from '../helpers/tools.js';

t.test('a deleted index is rebuilt and cached tags are revalidated', async (t) => {
  const up = await startLyingUpstream();
  t.teardown(() => up.close());
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'x', digest: sha256('c'), size: 1 }, layers: [] }));
  up.manifests.set('org/app:v1', { bytes: manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json', behaviour: 'good' });
  const config = { upstreams: [{ name: 'up.test', url: up.url, tag_ttl: '1h' }] };
  let s = await startStowage({ config });
  const url = () => `${s.url}/v2/up.test/org/app/manifests/v1`;
  t.equal((await fetch(url())).status, 200);
  t.equal((await fetch(url())).status, 200);
  t.same([up.requests('GET /v2/org/app/manifests/v1'), up.requests('HEAD /v2/org/app/manifests/v1')], [1, 0], 'one fetch, then the TTL holds');
  await s.stop();
  for (const f of ['stowage.sqlite', 'stowage.sqlite-wal', 'stowage.sqlite-shm']) await rm(join(s.rootDir, f), { force: true });
  s = await startStowage({ rootDir: s.rootDir, config });
  t.teardown(() => s.stop());
  const again = await fetch(url());
  t.equal(again.status, 200, 'still served after the index was deleted');
  t.ok(Buffer.from(await again.arrayBuffer()).equals(manifest));
  t.same([up.requests('GET /v2/org/app/manifests/v1'), up.requests('HEAD /v2/org/app/manifests/v1')], [1, 1], 'revalidated with one HEAD, not re-fetched');
  await sleep(200);
  t.ok(s.logs().some((l) => l.cache === 'revalidated'), 'logged as revalidated');
  t.same(await (await fetch(`${s.url}/v2/up.test/org/app/tags/list`)).json(), { name: 'up.test/org/app', tags: ['v1'] }, 'tags rebuilt');
});
