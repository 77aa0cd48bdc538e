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
import { startRegistry2 } from '../helpers/procs.js';
import { scratchDir } from '../helpers/scratch.js';
import { freePort } from '../helpers/tools.js';
import { startRelay } from '../../bench/wan-relay.mjs';
import { corruptBlobs } from '../interop/object-store-scenarios.js';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.js';
import { databaseStoppedUnderLoad, dutiesRacingTraffic, fillerKilled, notificationsAcrossDeath, singleFlightAcrossReplicas } from './duties.js';
import { chunkedUploadAcrossReplicas, listingsAndDeletes, readAfterWrite, skopeoThroughBalancer, tokensAndHtpasswd } from './scenarios.js';
import bcrypt from 'bcryptjs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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

  t.test('cluster duties', { timeout: 600_000 }, async (t) => {
    const upstream = await startRegistry2();
    t.teardown(() => upstream.stop());
    const hookPort = await freePort();
    const work = await scratchDir('stowage-cluster-duties-');
    const c: Cluster = await startCluster({
      pg,
      config: {
        // Ranged fetch off: the duties count one upstream GET per blob fill (a 24 MiB blob would be two ranges).
        upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io', ranges: { enabled: false },
        notifications: { endpoints: [{ name: 'audit', url: `http://127.0.0.1:${hookPort}/hook`, threshold: 1, backoff: '200ms', timeout: '1s', ignore: { actions: ['pull', 'fetch'] } }] },
      },
    });
    t.teardown(() => c.stop());
    await t.test('one upstream fetch per blob across replicas', (t) => singleFlightAcrossReplicas(t, c, upstream));
    await t.test('notifications across a replica\'s death', (t) => notificationsAcrossDeath(t, c, hookPort, work));
    await t.test('the database stopped under load', (t) => databaseStoppedUnderLoad(t, c, pg));
  });

  t.test('stowage\'s own tokens and the htpasswd file, on every replica', { timeout: 300_000 }, async (t) => {
    const dir = await scratchDir('stowage-cluster-auth-');
    const file = join(dir, 'htpasswd');
    const users = (entries: Record<string, string>) => writeFile(file, Object.entries(entries).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 4)}\n`).join(''));
    await users({ alice: 'alice-pw' });
    const c: Cluster = await startCluster({
      pg,
      config: {
        auth: { htpasswd: { realm: 'stowage', path: file } },
        access: [
          { repository: 'team/**', pull: ['alice', 'carol'], push: ['alice'] },
          { repository: '**', pull: ['anonymous'] },
        ],
      },
    });
    t.teardown(() => c.stop());
    await tokensAndHtpasswd(t, c, users);
  });

  t.test('the filling replica killed mid-blob', { timeout: 300_000 }, async (t) => {
    const upstream = await startRegistry2();
    t.teardown(() => upstream.stop());
    // A slow link to the upstream (40 Mbit/s), so the fill is still running when its replica dies.
    const relay = await startRelay({ target: `127.0.0.1:${upstream.port}`, rttMs: 10, rateBps: 40e6 });
    t.teardown(() => relay.close());
    // Ranged fetch off: the test allows two upstream GETs, the first fill's and one takeover's (a 16 MiB blob would be two ranges each).
    const c: Cluster = await startCluster({ pg, config: { upstreams: [{ name: 'docker.io', url: relay.url }], default_upstream: 'docker.io', ranges: { enabled: false } } });
    t.teardown(() => c.stop());
    const store = new FilesystemDriver({ rootDirectory: c.rootDir });
    await fillerKilled(t, c, upstream, () => corruptBlobs(store));
  });

  t.test('eviction and GC on one replica, racing pulls and pushes on the others', { timeout: 300_000 }, async (t) => {
    const upstream = await startRegistry2();
    t.teardown(() => upstream.stop());
    const c: Cluster = await startCluster({
      pg,
      config: {
        upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io',
        cache: { max_size: '2MiB', low_watermark: '50%', min_age: '0s', pull_hold: '1s', interval: '300ms' },
        storage: { maintenance: { gc: { enabled: true, interval: '2s', grace: '3s' } } },
      },
    });
    t.teardown(() => c.stop());
    await dutiesRacingTraffic(t, c, upstream);
  });
}
