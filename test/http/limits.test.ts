/**
 * Slow clients cannot hold the server: a slowloris crowd trickling headers is cut after the
 * headers timeout while other clients go on being served; an upload body that goes silent is cut
 * after the body idle timeout, and its session stays resumable.
 */
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import type { Config } from '../../src/config/schema.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { testConfig } from '../helpers/app.js';
import { sleep } from '../helpers/tools.js';

async function serve(timeouts: Partial<Config['http']['timeouts']>) {
  const log = pino({ level: 'silent' });
  const metadata = new MetadataIndex(':memory:');
  const config = testConfig();
  config.http.timeouts = { ...config.http.timeouts, ...timeouts };
  const app = buildApp({ config, log, registry: new LocalRegistry(new MemoryDriver(), metadata, log) });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, port: Number(new URL(url).port), close: async () => { await app.close(); metadata.close(); } };
}

interface Slow { socket: Socket; closedAt?: number; received: string }

t.test('slowloris: trickled headers are cut, other clients are served meanwhile', async (t) => {
  const s = await serve({ headers: 1500 });
  t.teardown(() => s.close());
  const started = Date.now();
  const crowd: Slow[] = [];
  for (let i = 0; i < 200; i++) {
    const slow: Slow = { socket: connect(s.port, '127.0.0.1'), received: '' };
    slow.socket.on('data', (d: Buffer) => { slow.received += d.toString(); });
    slow.socket.on('close', () => { slow.closedAt = Date.now(); });
    slow.socket.on('error', () => undefined);
    slow.socket.write('GET /v2/ HTTP/1.1\r\nHost: localhost\r\n');
    crowd.push(slow);
  }
  const trickle = setInterval(() => { for (const c of crowd) if (!c.socket.destroyed) c.socket.write('X-Slow: 1\r\n'); }, 200);
  t.teardown(() => clearInterval(trickle));

  let served = 0;
  while (Date.now() - started < 1200) {
    const r = await fetch(`${s.url}/v2/`);
    await r.arrayBuffer();
    if (r.status === 200) served++;
  }
  t.ok(served > 0, `other clients were served while 200 slow connections were open (${served} requests)`);
  t.equal(crowd.filter((c) => c.closedAt !== undefined).length, 0, 'the slow ones were still open then (so the test shows something)');
  for (let i = 0; i < 100 && crowd.some((c) => c.closedAt === undefined); i++) await sleep(100);
  clearInterval(trickle);
  const closed = crowd.filter((c) => c.closedAt !== undefined);
  t.equal(closed.length, crowd.length, 'every slow connection was closed by the server');
  t.ok(closed.every((c) => c.received === '' || c.received.startsWith('HTTP/1.1 408')), 'with 408 or nothing');
  const r = await fetch(`${s.url}/v2/`);
  t.equal(r.status, 200, 'and the server is fine afterwards');
});

t.test('an upload body that goes silent is cut; the session survives', async (t) => {
  const s = await serve({ body_idle: 500 });
  t.teardown(() => s.close());
  const start = await fetch(`${s.url}/v2/quiet/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location')!);
  const socket = connect(s.port, '127.0.0.1');
  let closedAt: number | undefined;
  let received = '';
  socket.on('data', (d: Buffer) => { received += d.toString(); });
  socket.on('close', () => { closedAt = Date.now(); });
  socket.on('error', () => undefined);
  socket.write(`PATCH ${location.pathname} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n`);
  socket.write(Buffer.alloc(100, 1));
  const sentAt = Date.now();
  for (let i = 0; i < 50 && closedAt === undefined; i++) await sleep(100);
  t.ok(closedAt !== undefined, `the silent body was cut (after ${closedAt === undefined ? '-' : closedAt - sentAt} ms)`);
  t.notMatch(received, /HTTP\/1\.1 20/, 'no success was reported for it');
  const status = await fetch(location);
  t.equal(status.status, 204, 'the upload session is still there');
  t.match(status.headers.get('range') ?? '', /^0-/, 'and can be resumed');
  const ok = await fetch(`${s.url}/v2/`);
  t.equal(ok.status, 200);
});

t.test('a body that keeps flowing is not cut, however long it takes', async (t) => {
  const s = await serve({ body_idle: 400 });
  t.teardown(() => s.close());
  const start = await fetch(`${s.url}/v2/steady/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location')!);
  let sent = 0;
  const body = new ReadableStream({
    async pull(controller) {
      if (sent >= 10) return controller.close();
      await sleep(200);
      sent++;
      controller.enqueue(new Uint8Array(10));
    },
  });
  const r = await fetch(location, { method: 'PATCH', body, duplex: 'half', headers: { 'content-type': 'application/octet-stream' } } as RequestInit);
  t.equal(r.status, 202, 'a 2 s body in 200 ms pieces, with a 400 ms idle limit');
  t.equal(r.headers.get('range'), '0-99');
});
