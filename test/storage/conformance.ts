/**
 * The shared StorageDriver conformance suite: every driver runs exactly these tests
 * (filesystem.test.ts, memory.test.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Test } from 'tap';
import {
  InvalidOffsetError, InvalidPathError, PathNotFoundError, type StorageDriver,
} from '../../src/storage/driver.js';

export type MakeDriver = () => Promise<{ driver: StorageDriver; cleanup(): Promise<void> }>;

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function rejectsWith(t: Test, p: Promise<unknown>, cls: Function, msg: string): Promise<void> {
  try {
    await p;
    t.fail(`${msg}: did not reject`);
  } catch (e) {
    t.ok(e instanceof cls, `${msg}: ${(e as Error).name}`);
  }
}

export interface ConformanceOptions {
  /** false for object stores: a file is visible only once complete. */
  readsWhileWriting?: boolean;
  /**
   * Set (to the reason) for a store that may answer "not found" to a read racing an overwrite;
   * such reads are counted and reported, a torn read still fails.
   */
  overwriteMayVanish?: string;
  /** Objects in the paginated-listing test (default 1,050: more than one 1,000-key page). */
  listingCount?: number;
}

const write = (w: { stream: NodeJS.WritableStream }, data: Buffer) =>
  new Promise<void>((resolve, reject) => w.stream.write(data, (e) => (e ? reject(e) : resolve())));

export function driverConformance(t: Test, name: string, make: MakeDriver, options: ConformanceOptions = {}): void {
  const withDriver = (title: string, fn: (t: Test, d: StorageDriver) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (tt) => {
      const { driver, cleanup } = await make();
      tt.teardown(cleanup);
      await fn(tt, driver);
    });

  withDriver('check() passes on a working store, again and again (what it creates may exist)', async (t, d) => {
    await d.check();
    await d.check();
    await d.putContent('/checked/file', Buffer.from('after the check'));
    t.equal((await d.getContent('/checked/file')).toString(), 'after the check');
  });

  withDriver('put and get round trip', async (t, d) => {
    for (const data of [Buffer.alloc(0), Buffer.from('small'), randomBytes(5 * 1024 * 1024)]) {
      await d.putContent('/a/b/file', data);
      t.ok((await d.getContent('/a/b/file')).equals(data), `round trip of ${data.length} bytes`);
      t.equal((await d.stat('/a/b/file')).size, data.length);
    }
  });

  withDriver('overwrite is atomic for concurrent readers', async (t, d) => {
    const one = Buffer.alloc(1024 * 1024, 1);
    const two = Buffer.alloc(1024 * 1024, 2);
    await d.putContent('/x/f', one);
    let writing = true;
    let reads = 0;
    let torn = 0;
    let vanished = 0;
    const reader = (async () => {
      while (writing) {
        let got: Buffer;
        try {
          got = await d.getContent('/x/f');
        } catch (e) {
          if (!(e instanceof PathNotFoundError) || !options.overwriteMayVanish) throw e;
          vanished++;
          continue;
        }
        reads++;
        if (!got.equals(one) && !got.equals(two)) torn++;
      }
    })();
    for (let i = 0; i < 50; i++) await d.putContent('/x/f', i % 2 ? one : two);
    writing = false;
    await reader;
    t.ok(reads > 0, `read ${reads} times during the overwrites`);
    t.equal(torn, 0, 'no reader saw a mix');
    if (vanished > 0) t.comment(`${vanished} reads found nothing mid-overwrite (${options.overwriteMayVanish})`);
  });

  withDriver('stat', async (t, d) => {
    await d.putContent('/s/dir/file', Buffer.from('abc'));
    const f = await d.stat('/s/dir/file');
    t.same([f.isDir, f.size, f.path], [false, 3, '/s/dir/file']);
    t.ok(f.modTime instanceof Date);
    t.equal((await d.stat('/s/dir')).isDir, true);
    await rejectsWith(t, d.stat('/s/nope'), PathNotFoundError, 'missing');
  });

  withDriver('reader offsets and lengths', async (t, d) => {
    const data = Buffer.from('0123456789');
    await d.putContent('/r/f', data);
    t.equal((await readAll(await d.reader('/r/f'))).toString(), '0123456789');
    t.equal((await readAll(await d.reader('/r/f', { offset: 3 }))).toString(), '3456789');
    t.equal((await readAll(await d.reader('/r/f', { offset: 3, length: 4 }))).toString(), '3456');
    t.equal((await readAll(await d.reader('/r/f', { offset: 8, length: 100 }))).toString(), '89');
    t.equal((await readAll(await d.reader('/r/f', { offset: 10 }))).length, 0, 'offset == size is empty');
    await rejectsWith(t, d.reader('/r/f', { offset: 11 }), InvalidOffsetError, 'offset > size');
    await rejectsWith(t, d.reader('/r/missing'), PathNotFoundError, 'missing file');
  });

  withDriver('writer, append, cancel', async (t, d) => {
    const w = await d.writer('/w/f');
    for (const part of ['ab', 'cd', 'ef']) await new Promise<void>((r, j) => w.stream.write(Buffer.from(part), (e) => (e ? j(e) : r())));
    t.equal(w.size(), 6);
    await w.commit();
    await w.commit(); // twice is harmless
    t.equal((await d.getContent('/w/f')).toString(), 'abcdef');
    const a = await d.writer('/w/f', { append: true });
    t.equal(a.size(), 6, 'append starts at the current end');
    await new Promise<void>((r) => a.stream.write(Buffer.from('gh'), () => r()));
    t.equal(a.size(), 8);
    await a.commit();
    t.equal((await d.getContent('/w/f')).toString(), 'abcdefgh');
    const trunc = await d.writer('/w/f');
    await new Promise<void>((r) => trunc.stream.write(Buffer.from('z'), () => r()));
    await trunc.commit();
    t.equal((await d.getContent('/w/f')).toString(), 'z', 'without append the file is replaced');
    const c = await d.writer('/w/g');
    await new Promise<void>((r) => c.stream.write(Buffer.from('gone'), () => r()));
    await c.cancel();
    await c.cancel();
    await rejectsWith(t, d.stat('/w/g'), PathNotFoundError, 'cancelled file removed');
  });

  if (options.readsWhileWriting !== false) withDriver('bytes written are readable before commit', async (t, d) => {
    const w = await d.writer('/g/growing');
    await new Promise<void>((r) => w.stream.write(Buffer.from('first'), () => r()));
    t.equal((await readAll(await d.reader('/g/growing', { offset: 0, length: 5 }))).toString(), 'first');
    await new Promise<void>((r) => w.stream.write(Buffer.from('second'), () => r()));
    t.equal((await readAll(await d.reader('/g/growing', { offset: 5 }))).toString(), 'second');
    await w.commit();
  });

  withDriver('list', async (t, d) => {
    await d.putContent('/l/b/x', Buffer.from('1'));
    await d.putContent('/l/a', Buffer.from('2'));
    await d.putContent('/l/c/d/e', Buffer.from('3'));
    t.same(await d.list('/l'), ['/l/a', '/l/b', '/l/c']);
    t.same(await d.list('/l/c'), ['/l/c/d']);
    await rejectsWith(t, d.list('/l/none'), PathNotFoundError, 'missing dir');
    await rejectsWith(t, d.list('/l/a'), PathNotFoundError, 'a file is not a dir');
  });

  withDriver('move', async (t, d) => {
    await d.putContent('/m/src', Buffer.from('new'));
    await d.putContent('/m/dst', Buffer.from('old'));
    await d.move('/m/src', '/m/dst');
    t.equal((await d.getContent('/m/dst')).toString(), 'new', 'replaces dest');
    await rejectsWith(t, d.stat('/m/src'), PathNotFoundError, 'source gone');
    await d.move('/m/dst', '/m/deep/er/dst');
    t.equal((await d.getContent('/m/deep/er/dst')).toString(), 'new', 'creates parents');
    await rejectsWith(t, d.move('/m/nothing', '/m/x'), PathNotFoundError, 'missing source');
  });

  withDriver('delete', async (t, d) => {
    await d.putContent('/d/tree/a', Buffer.from('1'));
    await d.putContent('/d/tree/sub/b', Buffer.from('2'));
    await d.putContent('/d/keep', Buffer.from('3'));
    await d.delete('/d/tree/a');
    await rejectsWith(t, d.stat('/d/tree/a'), PathNotFoundError, 'file deleted');
    await d.delete('/d/tree');
    await rejectsWith(t, d.stat('/d/tree/sub/b'), PathNotFoundError, 'tree deleted');
    t.equal((await d.getContent('/d/keep')).toString(), '3', 'sibling kept');
    await rejectsWith(t, d.delete('/d/tree'), PathNotFoundError, 'missing');
  });

  withDriver('invalid paths are refused before any I/O', async (t, d) => {
    const bad = ['relative', '/a/../b', '/a/./b', '/a//b', '/a/b/', '/a/%2e%2e/b', '/a\\b', '/a/b c', '', '/..'];
    for (const p of bad) {
      await rejectsWith(t, d.stat(p), InvalidPathError, `stat ${JSON.stringify(p)}`);
      await rejectsWith(t, d.getContent(p), InvalidPathError, `getContent ${JSON.stringify(p)}`);
      await rejectsWith(t, d.putContent(p, Buffer.from('x')), InvalidPathError, `putContent ${JSON.stringify(p)}`);
      await rejectsWith(t, d.reader(p), InvalidPathError, `reader ${JSON.stringify(p)}`);
      await rejectsWith(t, d.writer(p), InvalidPathError, `writer ${JSON.stringify(p)}`);
      await rejectsWith(t, d.list(p), InvalidPathError, `list ${JSON.stringify(p)}`);
      await rejectsWith(t, d.move(p, '/ok'), InvalidPathError, `move from ${JSON.stringify(p)}`);
      await rejectsWith(t, d.delete(p), InvalidPathError, `delete ${JSON.stringify(p)}`);
    }
  });

  withDriver('64 MiB streamed write and read', async (t, d) => {
    const w = await d.writer('/big/blob');
    const hashIn = createHash('sha256');
    const chunk = randomBytes(1024 * 1024);
    for (let i = 0; i < 64; i++) {
      chunk[0] = i;
      hashIn.update(chunk);
      if (!w.stream.write(Buffer.from(chunk))) await new Promise((r) => w.stream.once('drain', r));
    }
    await w.commit();
    t.equal((await d.stat('/big/blob')).size, 64 * 1024 * 1024);
    const hashOut = createHash('sha256');
    for await (const c of await d.reader('/big/blob')) hashOut.update(c as Buffer);
    t.equal(hashOut.digest('hex'), hashIn.digest('hex'));
  });

  withDriver('the readsWhileWriting flag tells the truth', async (t, d) => {
    const w = await d.writer('/v/growing');
    await write(w, Buffer.from('early bytes'));
    const seen = await d.stat('/v/growing').then((i) => i.size, () => undefined);
    t.equal(d.readsWhileWriting, seen === 11, `readsWhileWriting=${d.readsWhileWriting}, size seen before commit: ${seen}`);
    await w.commit();
    t.equal((await d.getContent('/v/growing')).toString(), 'early bytes');
  });

  if (options.readsWhileWriting === false) {
    withDriver('nothing is visible before commit; an abandoned or cancelled write leaves nothing', async (t, d) => {
      const w = await d.writer('/ab/file');
      await write(w, randomBytes(7 * 1024 * 1024));
      await rejectsWith(t, d.stat('/ab/file'), PathNotFoundError, 'not visible while writing');
      await rejectsWith(t, d.list('/ab'), PathNotFoundError, 'its directory is not listed either');
      await w.cancel();
      await rejectsWith(t, d.stat('/ab/file'), PathNotFoundError, 'not visible after cancel');

      await d.putContent('/ab/old', Buffer.from('old bytes'));
      const a = await d.writer('/ab/old', { append: true });
      await write(a, randomBytes(6 * 1024 * 1024));
      t.equal((await d.getContent('/ab/old')).toString(), 'old bytes', 'an unfinished append leaves the old content in place');
      // `a` is abandoned (never committed nor cancelled), as after a crash: deleting the directory
      // above it clears whatever the store kept of it.
      await d.delete('/ab');
      await rejectsWith(t, d.stat('/ab/old'), PathNotFoundError, 'directory deleted');
    });
  }

  withDriver('appends smaller than a multipart part, across separate writers', async (t, d) => {
    const hash = createHash('sha256');
    const piece = 1024 * 1024 + 3; // 8 of them cross S3's 5 MiB minimum part size
    let total = 0;
    for (let i = 0; i < 8; i++) {
      const w = await d.writer('/ap/data', { append: true });
      t.equal(w.size(), total, `writer ${i} starts at ${total}`);
      const data = randomBytes(piece);
      hash.update(data);
      await write(w, data);
      await w.commit();
      total += piece;
      t.equal((await d.stat('/ap/data')).size, total, `size after append ${i}`);
    }
    const big = randomBytes(12 * 1024 * 1024 + 5);
    const w = await d.writer('/ap/data', { append: true });
    await write(w, big);
    await w.commit();
    hash.update(big);
    total += big.length;
    const empty = await d.writer('/ap/data', { append: true });
    await empty.commit();
    t.equal((await d.stat('/ap/data')).size, total, 'an empty append changes nothing');
    const out = createHash('sha256');
    for await (const c of await d.reader('/ap/data')) out.update(c as Buffer);
    t.equal(out.digest('hex'), hash.digest('hex'), 'the file is every append in order');
  });

  withDriver('move of an object bigger than a multipart copy part', async (t, d) => {
    const data = randomBytes(13 * 1024 * 1024 + 11);
    const w = await d.writer('/mv/src');
    await write(w, data);
    await w.commit();
    await d.move('/mv/src', '/mv/dst/data');
    await rejectsWith(t, d.stat('/mv/src'), PathNotFoundError, 'source gone');
    t.equal((await d.stat('/mv/dst/data')).size, data.length);
    t.ok((await readAll(await d.reader('/mv/dst/data'))).equals(data), 'bytes intact');
    t.ok((await readAll(await d.reader('/mv/dst/data', { offset: 6 * 1024 * 1024, length: 4 }))).equals(data.subarray(6 * 1024 * 1024, 6 * 1024 * 1024 + 4)), 'ranged read across parts');
  });

  withDriver('paginated listings and deletes of more than 1,000 entries', async (t, d) => {
    const count = options.listingCount ?? 1050;
    const names = Array.from({ length: count }, (_, i) => `/many/f${String(i).padStart(5, '0')}`);
    const queue = [...names];
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let n = queue.shift(); n; n = queue.shift()) await d.putContent(n, Buffer.from(n));
    }));
    await d.putContent('/many/sub/x', Buffer.from('x'));
    const listed = await d.list('/many');
    t.equal(listed.length, count + 1, `${count} files and one directory listed`);
    t.same(listed, [...names, '/many/sub'].sort(), 'every name, sorted');
    await d.delete('/many');
    await rejectsWith(t, d.list('/many'), PathNotFoundError, 'all deleted');
  });
}
