/**
 * The health gate (registry:2's health.Handler): while a check fails, registry requests get 503 so
 * that a load balancer takes the instance out; /metrics and another replica's stream of a fill
 * running here (/_stowage/fills/, http/peer.ts) pass, as they need nothing the checks watch.
 */
import { pino } from 'pino';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { Metrics } from '../../src/metrics.js';
import { PEER_PATH } from '../../src/proxy/cluster-fills.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { testConfig } from '../helpers/app.js';

t.test('while a check fails: registry requests 503, metrics and peer fills pass the gate', async (t) => {
  const log = pino({ level: 'silent' });
  const metadata = new MetadataIndex(':memory:');
  let healthy = false;
  const app = buildApp({
    config: testConfig(), log, metrics: new Metrics(), registry: new LocalRegistry(new MemoryDriver(), metadata, log),
    health: { healthy: () => healthy, failing: (): Record<string, string> => (healthy ? {} : { database: 'did not answer' }) },
  });
  t.teardown(async () => { await app.close(); metadata.close(); });
  const get = (url: string) => app.inject({ method: 'GET', url });
  const peerUrl = `${PEER_PATH}sha256:${'0'.repeat(64)}`;

  const v2 = await get('/v2/');
  t.equal(v2.statusCode, 503, '/v2/ answers 503');
  t.equal(v2.json().errors[0].code, 'UNAVAILABLE');
  t.equal((await get('/metrics')).statusCode, 200, '/metrics is served');
  // No cluster in this app, so no peer route: a 404 shows the request got past the gate.
  t.equal((await get(peerUrl)).statusCode, 404, 'a peer fill request is routed, not refused by the gate');

  healthy = true;
  t.equal((await get('/v2/')).statusCode, 200, 'healthy again: /v2/ is served');
});
