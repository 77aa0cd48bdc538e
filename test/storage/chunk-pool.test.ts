/**
 * The pooled read buffers behind blob GETs: a slot is never lent twice, comes back on give or when
 * its chunk is garbage collected, and the file stream reads the same bytes pooled or not.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { CHUNK_SIZE, ChunkPool, claimPooledChunks } from '../../src/storage/chunk-pool.js';
import { FileRangeStream } from '../../src/storage/drivers/file-range-stream.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('a slot is lent once and comes back once', async (t) => {
  const pool = new ChunkPool(2);
  const a = pool.take();
  const b = pool.take();
  t.equal(a.length, CHUNK_SIZE);
  t.equal(a.buffer, b.buffer, 'pooled chunks share one slab');
  t.not(a.byteOffset, b.byteOffset, 'in different slots');
  t.equal(pool.idleSlots, 0);
  const extra = pool.take();
  t.not(extra.buffer, a.buffer, 'an exhausted pool hands out an ordinary buffer');
  t.equal(extra.length, CHUNK_SIZE);

  const view = a.subarray(0, 100);
  pool.lend(a, view);
  pool.give(a);
  t.equal(pool.idleSlots, 0, 'giving the chunk instead of the lent view does nothing');
  pool.give(view);
  t.equal(pool.idleSlots, 1, 'the lent view brings its slot back');
  pool.give(view);
  t.equal(pool.idleSlots, 1, 'a second give is ignored');
  pool.give(extra);
  pool.give(Buffer.alloc(CHUNK_SIZE));
  t.equal(pool.idleSlots, 1, 'foreign buffers are ignored');

  const again = pool.take();
  t.equal(again.byteOffset, a.byteOffset, 'the freed slot is reused');
  pool.drop(again);
  pool.drop(b);
  t.equal(pool.idleSlots, 2, 'chunks never lent are dropped back');
});

t.test('a lent chunk nobody gives back returns when it is garbage collected', async (t) => {
  const pool = new ChunkPool(1);
  (() => {
    const chunk = pool.take();
    pool.lend(chunk, chunk);
  })();
  t.equal(pool.idleSlots, 0);
  await collectGarbage();
  t.equal(pool.idleSlots, 1, 'reclaimed');
  const kept = pool.take();
  pool.lend(kept, kept);
  await collectGarbage();
  t.equal(pool.idleSlots, 0, 'a chunk still referenced is not reclaimed');
  pool.give(kept);
  t.equal(pool.idleSlots, 1);
});

t.test('FileRangeStream reads the same bytes pooled and unpooled', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-chunks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const data = randomBytes(3 * CHUNK_SIZE + 12345);
  const file = join(dir, 'data');
  await writeFile(file, data);
  const pool = new ChunkPool(4);
  const ranges: Array<[number, number]> = [[0, data.length], [1, CHUNK_SIZE + 1], [CHUNK_SIZE, 2 * CHUNK_SIZE], [data.length - 5, data.length + 100], [7, 7]];
  for (const [start, end] of ranges) {
    for (const pooled of [false, true]) {
      const stream = new FileRangeStream(await open(file, 'r'), start, end, pool);
      const release = pooled ? claimPooledChunks(stream) : undefined;
      t.equal(typeof release, pooled ? 'function' : 'undefined');
      const hash = createHash('sha256');
      let length = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        t.ok(chunk.length <= CHUNK_SIZE);
        if (pooled && chunk.length > 0) t.equal(chunk.buffer.byteLength, 4 * CHUNK_SIZE, 'a pooled chunk is a view of the slab');
        hash.update(chunk);
        length += chunk.length;
        release?.(chunk);
      }
      const expected = data.subarray(start, Math.min(end, data.length));
      t.equal(length, expected.length, `[${start}, ${end}) ${pooled ? 'pooled' : 'unpooled'}: length`);
      t.equal(hash.digest('hex'), createHash('sha256').update(expected).digest('hex'), 'bytes');
    }
  }
  t.equal(pool.idleSlots, 4, 'every pooled chunk came back');
});

t.test('destroying a FileRangeStream closes the file and keeps the pool whole', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-chunks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'data');
  await writeFile(file, randomBytes(4 * CHUNK_SIZE));
  const pool = new ChunkPool(4);
  const fh = await open(file, 'r');
  const stream = new FileRangeStream(fh, 0, Number.POSITIVE_INFINITY, pool);
  claimPooledChunks(stream);
  await new Promise<void>((resolve) => stream.once('data', () => resolve()));
  stream.destroy();
  await new Promise((r) => stream.once('close', r));
  await t.rejects(fh.stat(), 'the file handle is closed');
  await collectGarbage();
  t.equal(pool.idleSlots, 4, 'chunks dropped with the stream are reclaimed');
});
