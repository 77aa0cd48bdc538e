/**
 * Blob GETs from filesystem storage over a real socket, where pooled read buffers are reused as
 * soon as the socket has taken their bytes: many concurrent downloads (more than the pool has
 * slots), ranges, slow readers and clients that hang up midway; every completed body must hash
 * to its digest, and every slot must come back to the pool.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t, { type Test } from 'tap';
import { blobChunkPool, CHUNK_SIZE } from '../../src/storage/chunk-pool.js';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.js';
import { buildApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { Metrics } from '../../src/metrics.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { testConfig } from '../helpers/app.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Got { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }
type LogLine = Record<string, unknown>;

/** stowage on filesystem storage and a real socket, its log lines captured, /metrics on. */
async function serveFromFilesystem(t: Test): Promise<{ base: string; lines: LogLine[]; push(blob: Buffer): Promise<number> }> {
  const root = await mkdtemp(join(tmpdir(), 'stowage-serve-'));
  const lines: LogLine[] = [];
  const config = { ...testConfig(), log: { level: 'info' as const, fields: {} } };
  const log = createLogger(config.log, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const metadata = new MetadataIndex(':memory:');
  const app = buildApp({ config, log, metrics: new Metrics(), registry: new LocalRegistry(new FilesystemDriver({ rootDirectory: root }), metadata, log) });
  t.teardown(async () => {
    await app.close();
    metadata.close();
    await rm(root, { recursive: true, force: true });
  });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const push = async (blob: Buffer) => (await fetch(`${base}/v2/serve/test/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob })).status;
  return { base, lines, push };
}

/** The first request log line that matches, waiting up to 2 s (an abort is logged on 'close'). */
async function requestLine(lines: LogLine[], matches: (line: LogLine) => boolean): Promise<LogLine | undefined> {
  for (let i = 0; i < 100; i++) {
    const line = lines.find((l) => l.msg === 'request' && matches(l));
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

function get(base: string, path: string, options: { range?: string; abortAfter?: number; slow?: boolean } = {}): Promise<Got | 'aborted'> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const req = request(url, { headers: options.range ? { Range: options.range } : {} }, (res) => {
      const parts: Buffer[] = [];
      let received = 0;
      res.on('data', (c: Buffer) => {
        parts.push(c);
        received += c.length;
        if (options.abortAfter !== undefined && received >= options.abortAfter) {
          req.destroy();
          resolve('aborted');
        }
        if (options.slow) {
          res.pause();
          setTimeout(() => res.resume(), 2);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', (e) => (options.abortAfter !== undefined ? resolve('aborted') : reject(e)));
    });
    req.on('error', (e) => (options.abortAfter !== undefined ? resolve('aborted') : reject(e)));
    req.end();
  });
}

t.test('concurrent blob GETs from filesystem storage are byte-exact', async (t) => {
  const { base, push } = await serveFromFilesystem(t);

  const blobs = [5 * CHUNK_SIZE + 17, 3 * CHUNK_SIZE, CHUNK_SIZE - 1, 2 * CHUNK_SIZE + 1, 7].map((n) => randomBytes(n));
  for (const blob of blobs) t.equal(await push(blob), 201, `pushed ${blob.length} bytes`);

  // 48 downloads at once need more chunks than the pool's 64 slots: pooled and ordinary buffers mix.
  const jobs = Array.from({ length: 48 }, (_, i) => {
    const blob = blobs[i % blobs.length]!;
    const path = `/v2/serve/test/blobs/${sha256(blob)}`;
    if (i % 6 === 1 && blob.length > 2) {
      const start = (i * 7919) % (blob.length - 1);
      const end = Math.min(blob.length - 1, start + CHUNK_SIZE + 3);
      return get(base, path, { range: `bytes=${start}-${end}` }).then((got) => ({ got, blob, range: [start, end] as const }));
    }
    if (i % 6 === 2 && blob.length > 2 * CHUNK_SIZE) return get(base, path, { abortAfter: CHUNK_SIZE }).then((got) => ({ got, blob, range: undefined }));
    return get(base, path, { slow: i % 6 === 3 }).then((got) => ({ got, blob, range: undefined }));
  });
  const results = await Promise.all(jobs);

  let exact = 0;
  let aborted = 0;
  for (const { got, blob, range } of results) {
    if (got === 'aborted') {
      aborted++;
      continue;
    }
    const expected = range ? blob.subarray(range[0], range[1] + 1) : blob;
    if (got.status === (range ? 206 : 200) && got.body.equals(expected)) exact++;
    else t.fail(`status ${got.status}, ${got.body.length} bytes, expected ${expected.length}${range ? ` (range ${range.join('-')})` : ''}`);
  }
  t.equal(exact + aborted, results.length, 'every completed download is byte-exact');
  t.ok(aborted > 0, `${aborted} clients hung up midway`);

  // The server goes on serving correctly after the hang-ups.
  const after = await get(base, `/v2/serve/test/blobs/${sha256(blobs[0]!)}`);
  t.ok(after !== 'aborted' && after.body.equals(blobs[0]!), 'a later download is exact');

  // Slots come back: at once from completed writes, through GC for chunks a hang-up stranded.
  for (let i = 0; i < 50 && blobChunkPool.idleSlots < 64; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(blobChunkPool.idleSlots, 64, 'every pool slot is back');
});

t.test('HEAD, If-None-Match and a missing blob are unchanged by the pooled path', async (t) => {
  const { base, push } = await serveFromFilesystem(t);
  const blob = randomBytes(CHUNK_SIZE + 5);
  const digest = sha256(blob);
  t.equal(await push(blob), 201);

  const head = await fetch(`${base}/v2/serve/test/blobs/${digest}`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers.get('content-length'), String(blob.length));
  t.equal(head.headers.get('docker-content-digest'), digest);

  const full = await fetch(`${base}/v2/serve/test/blobs/${digest}`);
  t.equal(full.status, 200);
  t.equal(full.headers.get('content-length'), String(blob.length));
  t.equal(full.headers.get('etag'), `"${digest}"`);
  t.equal(full.headers.get('docker-distribution-api-version'), 'registry/2.0', 'headers from hooks survive');
  t.ok(Buffer.from(await full.arrayBuffer()).equals(blob));

  const cached = await fetch(`${base}/v2/serve/test/blobs/${digest}`, { headers: { 'If-None-Match': `"${digest}"` } });
  t.equal(cached.status, 304);

  const missing = await fetch(`${base}/v2/serve/test/blobs/${sha256(Buffer.from('nope'))}`);
  t.equal(missing.status, 404);
  t.equal((await missing.json() as { errors: Array<{ code: string }> }).errors[0]?.code, 'BLOB_UNKNOWN');

  const unsatisfiable = await fetch(`${base}/v2/serve/test/blobs/${digest}`, { headers: { Range: `bytes=${blob.length + 10}-` } });
  t.equal(unsatisfiable.status, 416);
});

t.test('a client that hangs up midway still gets its log line and counter', async (t) => {
  const { base, lines, push } = await serveFromFilesystem(t);
  const blob = randomBytes(32 * CHUNK_SIZE); // far more than the socket buffers hold
  const digest = sha256(blob);
  t.equal(await push(blob), 201);

  t.equal(await get(base, `/v2/serve/test/blobs/${digest}`, { abortAfter: CHUNK_SIZE }), 'aborted');
  const line = await requestLine(lines, (l) => l.method === 'GET' && l.reference === digest);
  t.ok(line, 'the aborted GET was logged');
  t.equal(line?.aborted, true);
  t.equal(line?.status, 200);
  t.ok(Number(line?.bytes) >= CHUNK_SIZE && Number(line?.bytes) < blob.length, `bytes = what was sent (${String(line?.bytes)})`);
  const text = await (await fetch(`${base}/metrics`)).text();
  t.match(text, /stowage_requests_total\{kind="blob",method="GET",status="aborted"\} 1/);
  t.equal(lines.filter((l) => l.msg === 'request' && l.reference === digest && l.method === 'GET').length, 1, 'logged once');

  // A client that leaves while its upload body is still streaming: no status was ever sent.
  const session = await fetch(`${base}/v2/serve/test/blobs/uploads/`, { method: 'POST' });
  const location = new URL(session.headers.get('location') ?? '', base);
  await new Promise<void>((resolve) => {
    const req = request(location, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(8 * CHUNK_SIZE) } });
    req.on('error', () => resolve());
    req.write(randomBytes(CHUNK_SIZE), () => setTimeout(() => { req.destroy(); resolve(); }, 100));
  });
  const patch = await requestLine(lines, (l) => l.method === 'PATCH');
  t.equal(patch?.aborted, true, 'the abandoned PATCH was logged as aborted');
  t.equal(patch?.status, undefined, 'with no status, since none was sent');
});
