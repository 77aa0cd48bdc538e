/**
 * Three replicas on one PostgreSQL and one shared directory, behind nginx (round robin, no
 * affinity): the registry's behaviours through the balancer (scenarios.ts), then the cluster's own
 * duties (cluster-duties.ts): one upstream fetch per blob, a filling replica killed, eviction and
 * GC racing pulls, notifications across a replica's death, the database stopped under load.
 */
import t from 'tap';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { missingNginx } from '../helpers/nginx.js';
import { missingPostgres, startPostgres } from '../helpers/postgres.js';
import { missingTools } from '../helpers/tools.js';
import { chunkedUploadAcrossReplicas, listingsAndDeletes, readAfterWrite, skopeoThroughBalancer } from './scenarios.js';

const skip = missingPostgres() ?? missingNginx() ?? missingTools('skopeo');
if (skip) {
  t.pass(`skipped: ${skip}`);
} else {
  const pg = await startPostgres();
  t.teardown(() => pg.destroy());

  t.test('registry behaviours through the balancer', { timeout: 300_000 }, async (t) => {
    const c: Cluster = await startCluster({ pg });
    t.teardown(() => c.stop());
    await t.test('skopeo push and pull', (t) => skopeoThroughBalancer(t, c));
    await t.test('a chunked upload, every request on another replica', (t) => chunkedUploadAcrossReplicas(t, c));
    await t.test('push then pull, in a loop', (t) => readAfterWrite(t, c));
    await t.test('listings and deletes agree everywhere', (t) => listingsAndDeletes(t, c));
  });
}
