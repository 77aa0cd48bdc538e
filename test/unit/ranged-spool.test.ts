/**
 * The ranged stream's spool (upstream/spool.ts, ranged-stream.ts) over real sockets: a node http
 * server that honours Range, its first range slow, and a reader that takes its time. The bytes
 * come out whole and in order; what waits for its turn is in the spool file, not in the stream's
 * buffer, also while the reader takes nothing; the spool file is gone at the end or when the
 * stream is destroyed, and its bytes and the budget are given back.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { pino } from 'pino';
import { UpstreamClient } from '../../src/upstream/client.js';
import { HeldBudget } from '../../src/upstream/held-budget.js';
import { fetchBlob } from '../../src/upstream/ranged-body.js';
import { SpoolDir } from '../../src/upstream/spool.js';
import type { UpstreamConfig } from '../../src/config/schema.js';

const MiB = 1024 * 1024;
const SIZE = 12 * MiB + 777;
const blob = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, Math.min(i, SIZE - 4));
const DIGEST = `sha256:${createHash('sha256').update(blob).digest('hex')}` as never;

const cfg = (url: string): UpstreamConfig => ({
  name: 'u.test', url, tagTtlMs: 1000, negativeTtlMs: 0, revalidateTimeoutMs: 1000, connectTimeoutMs: 1000,
  headersTimeoutMs: 5000, bodyTimeoutMs: 10_000, maxConcurrent: 8, contentTtlMs: 0, breakerFailures: 3, breakerCooldownMs: 1000,
});

/** Serves `blob` with Range; the range from byte 0 trickles out over `slowMs`, the others at once. */
async function rangeServer(slowMs: number) {
  const s = createServer((req, res) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m && m[2] ? Number(m[2]) : SIZE - 1;
    const body = blob.subarray(start, end + 1);
    res.writeHead(m ? 206 : 200, { 'content-length': String(body.length), ...(m ? { 'content-range': `bytes ${start}-${end}/${SIZE}` } : {}) });
    if (start !== 0) return res.end(body);
    const piece = 64 * 1024;
    const pieces = Math.ceil(body.length / piece);
    let i = 0;
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer);
      res.write(body.subarray(i * piece, (i + 1) * piece));
      if (++i >= pieces) { clearInterval(timer); res.end(); }
    }, slowMs / pieces);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

/** A ranged fetch of `blob` (1 MiB chunks, 4 at once) from a server whose first range takes `slowMs`, spooled in a fresh directory. */
async function spooledFetch(t: Test, slowMs: number, budgetBytes: number) {
  const up = await rangeServer(slowMs);
  const dir = mkdtempSync(join(tmpdir(), 'stowage-spool-unit-'));
  t.teardown(async () => { await up.close(); rmSync(dir, { recursive: true, force: true }); });
  const client = new UpstreamClient(cfg(up.url), { log: pino({ level: 'silent' }) });
  t.teardown(() => client.close());
  const spoolDir = new SpoolDir(dir);
  const budget = new HeldBudget(budgetBytes);
  const answer = await fetchBlob(client, 'r', DIGEST, { connections: 4, chunkSize: MiB, minSize: 4 * MiB, startAfterMs: 0, budget, spoolDir });
  return { answer, dir, spoolDir, budget };
}

t.test('later chunks wait in the spool; a slow reader gets every byte in order without the stream buffering them', async (t) => {
  const { answer, dir, spoolDir, budget } = await spooledFetch(t, 600, 2 * MiB);
  t.ok(answer.ranged, 'ranged');
  const body = answer.response.body!;

  // The reader takes a chunk, then waits: the stream must not pile spool reads into its buffer.
  const hash = createHash('sha256');
  let bytes = 0;
  let maxBuffered = 0;
  let maxSpooled = 0;
  let filesSeen = 0;
  for await (const chunk of body) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    maxBuffered = Math.max(maxBuffered, body.readableLength);
    maxSpooled = Math.max(maxSpooled, spoolDir.bytes);
    filesSeen = Math.max(filesSeen, readdirSync(dir).length);
    await new Promise((r) => setTimeout(r, 2));
  }
  t.equal(bytes, SIZE, 'every byte');
  t.equal(`sha256:${hash.digest('hex')}`, DIGEST, 'in order');
  t.ok(maxSpooled >= 3 * MiB, `later chunks waited in the spool (${(maxSpooled / MiB).toFixed(1)} MiB at most)`);
  // The stream's own buffer: its high-water mark (1 MiB) plus at most one spool read (1 MiB) and one socket read.
  t.ok(maxBuffered <= 2 * MiB + 64 * 1024, `the stream buffered ${(maxBuffered / MiB).toFixed(2)} MiB at most`);
  t.equal(filesSeen, 0, 'the spool file has no name');
  await new Promise((r) => setImmediate(r));
  t.equal(spoolDir.bytes, 0, 'the spool file is closed and its bytes given back');
  t.equal(budget.held, 0, 'the budget is given back');
});

t.test('a reader that stops: the rest waits in the spool, not in the stream; destroyed, everything is given back', async (t) => {
  const { answer, spoolDir, budget } = await spooledFetch(t, 300, 64 * MiB);
  const body = answer.response.body!;
  // Read the first 3 MiB, then stop reading and let everything else arrive.
  let bytes = 0;
  await new Promise<void>((resolve) => {
    const onData = (c: Buffer) => {
      bytes += c.length;
      if (bytes >= 3 * MiB) { body.off('data', onData); body.pause(); resolve(); }
    };
    body.on('data', onData);
  });
  await new Promise((r) => setTimeout(r, 800));
  t.ok(spoolDir.bytes >= 8 * MiB, `the rest arrived into the spool (${(spoolDir.bytes / MiB).toFixed(1)} MiB)`);
  t.ok(body.readableLength <= 2 * MiB + 64 * 1024, `while the reader takes nothing the stream holds ${(body.readableLength / MiB).toFixed(2)} MiB`);
  body.destroy();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(spoolDir.bytes, 0, 'destroyed: the spool file is closed');
  t.equal(budget.held, 0, 'and the budget is given back');
});

t.test('no spool: the rest in one request once the first chunk has gone to a slow reader, every byte in order', async (t) => {
  const up = await rangeServer(100);
  t.teardown(() => up.close());
  const client = new UpstreamClient(cfg(up.url), { log: pino({ level: 'silent' }) });
  t.teardown(() => client.close());
  const plans: string[] = [];
  const answer = await fetchBlob(client, 'r', DIGEST, { connections: 4, chunkSize: MiB, minSize: 4 * MiB, startAfterMs: 0 }, {
    onPlan: (p) => plans.push(`${p.parallel ? 'parallel' : 'sequential'} ${p.chunks} ${p.connections}`),
  });
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of answer.response.body!) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    // Slower than the upstream: the first chunk ends while the reader is full.
    await new Promise((r) => setTimeout(r, 5));
  }
  t.equal(bytes, SIZE, 'every byte');
  t.equal(`sha256:${hash.digest('hex')}`, DIGEST, 'in order');
  t.same(plans, ['sequential 2 1'], 'the first chunk, then the rest in one request, one at a time');
});
