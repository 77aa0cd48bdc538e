/**
 * Three replicas on one PostgreSQL and one bucket of Swift's S3 API, behind nginx: the registry's
 * behaviours through the balancer (scenarios.ts) and one upstream fetch per blob (duties.ts) on an
 * object store, where a fill's bytes reach storage only at its commit.
 */
import t from 'tap';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { missingNginx } from '../helpers/nginx.js';
import { missingStore, startObjectStore } from '../helpers/object-stores.js';
import { missingPostgres, startPostgres } from '../helpers/postgres.js';
import { startRegistry2 } from '../helpers/procs.js';
import { missingTools } from '../helpers/tools.js';
import { singleFlightAcrossReplicas } from './duties.js';
import { chunkedUploadAcrossReplicas, listingsAndDeletes, readAfterWrite, skopeoThroughBalancer } from './scenarios.js';

const skip = missingPostgres() ?? missingNginx() ?? missingStore('s3') ?? missingTools('skopeo');
if (skip) {
  t.pass(`skipped: ${skip}`);
} else {
  const [pg, store] = await Promise.all([startPostgres(), startObjectStore('s3')]);
  t.teardown(async () => { await pg.destroy(); await store.stop(); });

  t.test('replicas on an S3 bucket', { timeout: 600_000 }, async (t) => {
    const bucket = await store.bucket();
    const upstream = await startRegistry2();
    t.teardown(() => upstream.stop());
    const c: Cluster = await startCluster({
      pg, storage: bucket.section,
      // Ranged fetch off: singleFlightAcrossReplicas counts one upstream GET per blob fill (a 24 MiB blob would be two ranges).
      config: { upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io', ranges: { enabled: false } },
    });
    t.teardown(() => c.stop());
    await t.test('skopeo push and pull', (t) => skopeoThroughBalancer(t, c));
    await t.test('a chunked upload, every request on another replica', (t) => chunkedUploadAcrossReplicas(t, c));
    await t.test('push then pull, in a loop', (t) => readAfterWrite(t, c, 20));
    await t.test('listings and deletes agree everywhere', (t) => listingsAndDeletes(t, c));
    await t.test('one upstream fetch per blob across replicas', (t) => singleFlightAcrossReplicas(t, c, upstream));
  });
}
