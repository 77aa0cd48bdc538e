/**
 * The request line after it was made cheap (issue 17): the same facts as before (request id, repo,
 * reference, status, bytes, ms), no key for a fact that is unset, nothing for a level that hides
 * it; a line a handler logs through req.log still carries the request id and is still redacted.
 * Over a real socket, with the logger stowage makes (createLogger), writing into this test.
 */
import t, { type Test } from 'tap';
import { buildApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { Metrics } from '../../src/metrics.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { testConfig } from '../helpers/app.js';
import { ALL_ACCEPT, makeImage, pushImageHttp } from '../helpers/image.js';

type Line = Record<string, unknown>;

async function serve(t: Test, level: 'info' | 'warn') {
  const lines: Line[] = [];
  const config = { ...testConfig(), log: { level, fields: { service: 'registry' } } };
  const log = createLogger(config.log, { write: (l: string) => void lines.push(JSON.parse(l) as Line) });
  const metadata = new MetadataIndex(':memory:');
  const metrics = new Metrics();
  const app = buildApp({ config, log, metrics, registry: new LocalRegistry(new MemoryDriver(), metadata, log) });
  app.get('/probe', async (req) => {
    req.log.warn({ password: 'hunter2', detail: { token: 'abc' } }, 'probe');
    return 'ok';
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => { await app.close(); metadata.close(); });
  return { url, lines, metrics };
}

const image = makeImage({ seed: 91, layers: 1, layerSize: 2000 });

t.test('the request line says what it said, and only that', async (t) => {
  const s = await serve(t, 'info');
  await pushImageHttp(s.url, 'team/app', '1.0', image);
  const res = await fetch(`${s.url}/v2/team/app/manifests/1.0`, { headers: { accept: ALL_ACCEPT } });
  const body = Buffer.from(await res.arrayBuffer());
  t.equal(res.status, 200);
  const line = s.lines.findLast((l) => l.msg === 'request' && l.method === 'GET');
  t.ok(line, 'a request line');
  t.match(line, {
    level: 'info', service: 'registry', reqId: /^[0-9a-f-]{36}$/, method: 'GET', url: '/v2/team/app/manifests/1.0',
    repo: 'team/app', reference: '1.0', status: 200, bytes: body.length, ms: Number,
  });
  t.same(Object.keys(line!).filter((k) => ['cache', 'user', 'upstreamBytes', 'redirected', 'aborted'].includes(k)), [], 'no keys for facts that are unset');
  t.equal(new Set(s.lines.filter((l) => l.msg === 'request').map((l) => l.reqId)).size, s.lines.filter((l) => l.msg === 'request').length, 'one id per request');
});

t.test('req.log lines keep the request id and their redaction', async (t) => {
  const s = await serve(t, 'info');
  t.equal((await fetch(`${s.url}/probe`)).status, 200);
  const probe = s.lines.find((l) => l.msg === 'probe');
  const request = s.lines.find((l) => l.msg === 'request' && l.url === '/probe');
  t.ok(probe && request, 'both lines');
  t.equal(probe!.reqId, request!.reqId, 'the handler\'s line names the request it belongs to');
  t.equal(probe!.password, '[redacted]', 'a secret at the top level is redacted');
  t.same(probe!.detail, { token: '[redacted]' }, 'and one level down');
});

t.test('a level that hides the request line: no line, metrics still counted', async (t) => {
  const s = await serve(t, 'warn');
  await pushImageHttp(s.url, 'team/app', '1.0', image);
  await (await fetch(`${s.url}/v2/team/app/manifests/1.0`, { headers: { accept: ALL_ACCEPT } })).arrayBuffer();
  t.equal(s.lines.filter((l) => l.msg === 'request').length, 0, 'no request lines at warn');
  t.match(await s.metrics.registry.metrics(), /stowage_requests_total\{kind="manifest",method="GET",status="200"\} 1/, 'the request is counted');
});

t.test('a URL refused before routing still gets a line', async (t) => {
  const s = await serve(t, 'info');
  const res = await fetch(`${s.url}/v2/%zz/tags/list`);
  t.equal(res.status, 400);
  t.equal((await res.json() as { errors: Array<{ code: string }> }).errors[0]!.code, 'NAME_INVALID');
  const line = s.lines.find((l) => l.msg === 'request refused before routing');
  t.match(line, { level: 'info', reqId: /^[0-9a-f-]{36}$/, method: 'GET', url: '/v2/%zz/tags/list', status: 400 }, 'with the request id, URL and status');
});
