/** GET /metrics: Prometheus text with the per-request counters. */
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { Metrics } from '../../src/metrics.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { testConfig } from '../helpers/app.js';

t.test('metrics count requests by endpoint and status', async (t) => {
  const config = testConfig();
  const log = createLogger(config.log);
  const metadata = new MetadataIndex(':memory:');
  const metrics = new Metrics();
  const app = buildApp({ config, log, metrics, registry: new LocalRegistry(new MemoryDriver(), metadata, log) });
  t.teardown(async () => { await app.close(); metadata.close(); });
  const body = Buffer.from('metrics blob');
  const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(body).digest('hex')}`;
  t.equal((await app.inject({ method: 'POST', url: `/v2/m/blobs/uploads/?digest=${digest}`, payload: body, headers: { 'content-type': 'application/octet-stream' } })).statusCode, 201);
  t.equal((await app.inject({ method: 'GET', url: `/v2/m/blobs/${digest}` })).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: '/v2/m/manifests/nope' })).statusCode, 404);
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/plain/);
  t.match(res.body, /stowage_requests_total\{kind="uploads",method="POST",status="201"\} 1/);
  t.match(res.body, /stowage_requests_total\{kind="blob",method="GET",status="200"\} 1/);
  t.match(res.body, /stowage_requests_total\{kind="manifest",method="GET",status="404"\} 1/);
  t.match(res.body, new RegExp(`stowage_bytes_served_total\\{kind="blob"\\} ${body.length}`));
});
