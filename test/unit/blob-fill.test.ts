/**
 * BlobFill in-process, against the filesystem driver: every reader of a fill gets exactly the
 * blob, whatever the interleaving of upstream chunks, consumer speed and join time: from the
 * in-memory window, from the staging file when behind it, or from blobs/ after the commit. Each
 * round has a deadline, so a lost wake-up shows as a failure, not a hung suite.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pino from 'pino';
import t, { type Test } from 'tap';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import type { Digest } from '../../src/oci/digest.js';
import type { RepoName } from '../../src/oci/reference.js';
import { BlobFill } from '../../src/proxy/blob-fill.js';
import { BlobStore } from '../../src/registry/blob-store.js';
import type { FileWriter } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.js';
import { uploadsDir } from '../../src/storage/layout.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

/** A deterministic generator of pseudo-random numbers, so a failing round can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

/** An upstream body: the blob in chunks of random size, with random pauses. */
function body(blob: Buffer, rnd: () => number): Readable {
  return Readable.from((async function* () {
    for (let off = 0; off < blob.length;) {
      const n = Math.min(blob.length - off, 1 + Math.floor(rnd() * 256 * 1024));
      yield blob.subarray(off, off + n);
      off += n;
      if (rnd() < 0.2) await new Promise((r) => setTimeout(r, Math.floor(rnd() * 3)));
    }
  })(), { objectMode: false });
}

/** A consumer with a small buffer that sometimes completes writes at once and sometimes later. */
function consumer(rnd: () => number, into: Buffer[]): Writable {
  return new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      into.push(Buffer.from(chunk));
      const r = rnd();
      if (r < 0.4) cb();
      else if (r < 0.8) queueMicrotask(() => cb());
      else setTimeout(cb, Math.floor(rnd() * 2));
    },
  });
}

/** A filesystem driver on a fresh directory, an in-memory index and a blob store, removed after the test. */
async function setup(t: Test): Promise<{ storage: FilesystemDriver; metadata: MetadataIndex; blobs: BlobStore }> {
  const root = await mkdtemp(join(tmpdir(), 'stowage-fill-'));
  const storage = new FilesystemDriver({ rootDirectory: root });
  const metadata = new MetadataIndex(':memory:');
  t.teardown(async () => {
    metadata.close();
    await rm(root, { recursive: true, force: true });
  });
  return { storage, metadata, blobs: new BlobStore(storage, metadata) };
}

t.test('every reader of a fill gets exactly the blob', async (t) => {
  const { storage, metadata, blobs } = await setup(t);
  const log = pino({ level: 'silent' });
  for (let round = 0; round < 30; round++) {
    const rnd = prng(round + 1);
    const blob = Buffer.alloc(2 * 1024 * 1024 + Math.floor(rnd() * 9 * 1024 * 1024));
    for (let i = 0; i < blob.length; i += 4096) blob[i] = Math.floor(rnd() * 256);
    const digest = sha(blob);
    // odd rounds: a driver that cannot read a file while it is written (as object stores)
    const driver = round % 2 === 1 ? Object.assign(Object.create(storage) as FilesystemDriver, { readsWhileWriting: false }) : storage;
    const fill = new BlobFill(digest, `cache/r${round}` as RepoName, 'up', rnd() < 0.2 ? undefined : blob.length, { storage: driver, blobs, metadata, log });
    const writer = await fill.open();
    const running = fill.run({ size: fill.size, body: body(blob, rnd) }, writer);
    const readers = Array.from({ length: 4 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * Math.floor(rnd() * 15))); // late joiners start behind the window
      const parts: Buffer[] = [];
      await pipeline(fill.reader(), consumer(rnd, parts));
      return sha(Buffer.concat(parts));
    });
    const deadline = new Promise<string[]>((_, reject) => setTimeout(() => reject(new Error(`round ${round}: a reader hung`)), 30_000).unref());
    const got = await Promise.race([Promise.all(readers), deadline]);
    await running;
    t.same(got, [digest, digest, digest, digest], `round ${round}: ${blob.length} bytes, 4 readers`);
    t.equal(fill.state, 'committed', `round ${round}: committed`);
    const after: Buffer[] = [];
    await pipeline(fill.reader(), consumer(rnd, after));
    t.equal(sha(Buffer.concat(after)), digest, `round ${round}: a reader after the commit`);
  }
});

t.test('a fill with wrong bytes fails every reader', async (t) => {
  const { storage, metadata, blobs } = await setup(t);
  const blob = Buffer.alloc(3 * 1024 * 1024, 7);
  const fill = new BlobFill(sha(Buffer.from('something else')), 'cache/bad' as RepoName, 'up', blob.length, { storage, blobs, metadata, log: pino({ level: 'silent' }) });
  const writer = await fill.open();
  const running = fill.run({ size: blob.length, body: body(blob, prng(99)) }, writer);
  const results = await Promise.all(Array.from({ length: 3 }, async () => {
    const parts: Buffer[] = [];
    try {
      await pipeline(fill.reader(), consumer(prng(7), parts));
      return `complete ${Buffer.concat(parts).length}`;
    } catch {
      return Buffer.concat(parts).length < blob.length ? 'broken' : 'broken after everything';
    }
  }));
  await running;
  t.same(results, ['broken', 'broken', 'broken'], 'no reader completes, none got every byte');
  t.equal(fill.state, 'failed');
});

/** The filesystem driver with a staging file that takes `delayMs` for every write. */
function slowDriver(storage: FilesystemDriver, delayMs: number): FilesystemDriver {
  return Object.assign(Object.create(storage) as FilesystemDriver, {
    writer: async (path: string): Promise<FileWriter> => {
      const real = await storage.writer(path);
      const stream = new Writable({
        write(chunk: Buffer, _enc, cb) {
          setTimeout(() => real.stream.write(chunk, cb), delayMs);
        },
      });
      const end = () => new Promise<void>((resolve) => stream.end(resolve));
      return { stream, size: () => real.size(), commit: async () => { await end(); await real.commit(); }, cancel: async () => { stream.destroy(); await real.cancel(); } };
    },
  });
}

t.test('a slow staging file pauses the upstream body, and every byte still arrives', async (t) => {
  const { storage, metadata, blobs } = await setup(t);
  const blob = Buffer.alloc(12 * 1024 * 1024);
  for (let i = 0; i < blob.length; i += 512) blob[i] = i % 251;
  const fill = new BlobFill(sha(blob), 'cache/slow' as RepoName, 'up', blob.length, { storage: slowDriver(storage, 3), blobs, metadata, log: pino({ level: 'silent' }) });
  const upstream = body(blob, prng(5));
  let pauses = 0;
  upstream.on('pause', () => { pauses++; });
  const writer = await fill.open();
  const running = fill.run({ size: blob.length, body: upstream }, writer);
  const parts: Buffer[] = [];
  await pipeline(fill.reader(), consumer(prng(6), parts));
  await running;
  t.equal(sha(Buffer.concat(parts)), sha(blob), 'the reader got the blob');
  t.equal(fill.state, 'committed');
  t.ok(pauses > 1, `the body was paused while the writes caught up (${pauses} times)`);
});

t.test('a body that closes before its end fails the fill and leaves nothing behind', async (t) => {
  const { storage, metadata, blobs } = await setup(t);
  const blob = Buffer.alloc(4 * 1024 * 1024, 3);
  for (const size of [blob.length, undefined]) {
    const repo = `cache/cut-${size ?? 'chunked'}` as RepoName;
    const fill = new BlobFill(sha(blob), repo, 'up', size, { storage, blobs, metadata, log: pino({ level: 'silent' }) });
    // One MiB arrives, then the body is destroyed without an error (a connection that just ends).
    const upstream = new Readable({ read() {} });
    upstream.push(blob.subarray(0, 1024 * 1024));
    const writer = await fill.open();
    const running = fill.run({ size, body: upstream }, writer);
    t.equal((await storage.list(uploadsDir(repo))).length, 1, 'the staging directory is there while the fill runs');
    setTimeout(() => upstream.destroy(), 20);
    const parts: Buffer[] = [];
    const read = await pipeline(fill.reader(), consumer(prng(8), parts)).then(() => 'complete', () => 'broken');
    await running;
    t.equal(read, 'broken', `${size ?? 'no'} Content-Length: the reader's stream broke`);
    t.equal(fill.state, 'failed', 'the fill failed');
    t.match(fill.error?.message, /closed before its end/, 'and says why');
    t.same(await storage.list(uploadsDir(repo)), [], 'no staging directory is left');
    t.equal(await blobs.dataSize(sha(blob)), undefined, 'nothing was stored');
  }
});

t.test('a body broken before the fill starts reading fails the fill at once', async (t) => {
  const { storage, metadata, blobs } = await setup(t);
  const repo = 'cache/reset' as RepoName;
  const fill = new BlobFill(sha(Buffer.from('x')), repo, 'up', 1, { storage, blobs, metadata, log: pino({ level: 'silent' }) });
  const upstream = new Readable({ read() {} });
  upstream.on('error', () => undefined); // as pull-through.ts does from the response on
  const writer = await fill.open();
  upstream.destroy(new Error('connection reset'));
  await new Promise((r) => setImmediate(r)); // its 'error' and 'close' have been emitted
  const deadline = new Promise((_, reject) => setTimeout(() => reject(new Error('the fill hung')), 5000).unref());
  await Promise.race([fill.run({ size: 1, body: upstream }, writer), deadline]);
  t.equal(fill.state, 'failed');
  t.equal(fill.error?.message, 'connection reset', 'with the body\'s own error');
  t.same(await storage.list(uploadsDir(repo)), [], 'no staging directory is left');
});
