/**
 * Filesystem StorageDriver: driver path "/a/b" is "<root>/a/b". Durable, atomic writes: content
 * goes to a temp file in the target's directory, is fsynced, renamed over the target, and the
 * directory is fsynced, so a crash leaves the old file or the new one, never a mix.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { addAbortSignal, type Readable, Writable } from 'node:stream';
import {
  checkPath, DriverError, InvalidOffsetError, PathNotFoundError, StorageFullError,
  type FileInfo, type FileWriter, type ReadOptions, type StorageDriver,
} from '../driver.js';
import { blobChunkPool, CHUNK_SIZE } from '../chunk-pool.js';
import { FileRangeStream } from './file-range-stream.js';
import { checkStore } from './store-check.js';

const TEMP_PREFIX = '.stowage-tmp-';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly readsWhileWriting = true;
  private readonly root: string;

  private readonly onFull: (() => void) | undefined;

  constructor(options: { rootDirectory: string; onFull?: () => void }) {
    this.root = options.rootDirectory;
    this.onFull = options.onFull;
  }

  private full(path: string): string {
    checkPath(path);
    return path === '/' ? this.root : join(this.root, path);
  }

  private wrap(e: unknown, path: string): Error {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return new PathNotFoundError('path not found', path, { cause: e });
    if (e instanceof PathNotFoundError || e instanceof InvalidOffsetError || e instanceof DriverError) return e;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      this.onFull?.();
      return new StorageFullError('filesystem: no space left on device', path, { cause: e });
    }
    return new DriverError(`filesystem: ${(e as Error)?.message ?? String(e)}`, path, { cause: e });
  }

  /** Creates the root (as the first write would) and proves a file can be written and removed there. */
  async check(): Promise<void> {
    await checkStore(this.name, resolve(this.root), async () => {
      await mkdir(this.root, { recursive: true });
      const probe = join(this.root, `${TEMP_PREFIX}check-${randomBytes(8).toString('hex')}`);
      const fh = await open(probe, 'wx');
      await fh.close();
      await rm(probe);
    });
  }

  async stat(path: string): Promise<FileInfo> {
    const full = this.full(path);
    try {
      const s = await stat(full);
      return { path, size: s.isDirectory() ? 0 : s.size, modTime: s.mtime, isDir: s.isDirectory() };
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async getContent(path: string): Promise<Buffer> {
    const full = this.full(path);
    try {
      return await readFile(full);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw new PathNotFoundError('is a directory', path);
      throw this.wrap(e, path);
    }
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    const full = this.full(path);
    const dir = dirname(full);
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    try {
      await mkdir(dir, { recursive: true });
      const fh = await open(temp, 'w');
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, full);
      await fsyncDir(dir);
    } catch (e) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw this.wrap(e, path);
    }
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    const full = this.full(path);
    const offset = options.offset ?? 0;
    let fh;
    try {
      fh = await open(full, 'r');
      const size = (await fh.stat()).size;
      if (offset > size) throw new InvalidOffsetError(`offset ${offset} beyond size ${size}`, path);
      const end = options.length === undefined ? Number.POSITIVE_INFINITY : offset + options.length;
      const stream = new FileRangeStream(fh, offset, end, blobChunkPool);
      if (options.signal) addAbortSignal(options.signal, stream);
      return stream;
    } catch (e) {
      await fh?.close().catch(() => undefined);
      throw this.wrap(e, path);
    }
  }

  async writer(path: string, options: { append?: boolean } = {}): Promise<FileWriter> {
    const full = this.full(path);
    let existing = 0;
    try {
      await mkdir(dirname(full), { recursive: true });
      if (options.append) existing = await stat(full).then((s) => s.size, () => 0);
    } catch (e) {
      throw this.wrap(e, path);
    }
    const fh = await open(full, options.append ? 'a' : 'w').catch((e: unknown) => { throw this.wrap(e, path); });
    let written = 0;
    const wrap = (e: unknown) => this.wrap(e, path);
    // Our own Writable over the FileHandle: every write is a positional fs write, the callback
    // fires once the bytes are in the file (readers may rely on that), backpressure is honoured.
    // A write may store fewer bytes than asked (a disk filling up): the rest is written again, so
    // the file always holds exactly the bytes in order, or the write fails (ENOSPC) and says so.
    const writeAll = async (buf: Buffer): Promise<void> => {
      let done = 0;
      while (done < buf.length) {
        const { bytesWritten } = await fh.write(buf, done, buf.length - done, options.append ? null : written);
        if (bytesWritten === 0) throw Object.assign(new Error('no space left on device (short write)'), { code: 'ENOSPC' });
        done += bytesWritten;
        written += bytesWritten;
      }
    };
    const stream = new Writable({
      highWaterMark: 4 * CHUNK_SIZE,
      write(chunk: Buffer, _enc, cb) {
        writeAll(chunk).then(() => cb(), (e: unknown) => cb(wrap(e)));
      },
      writev(chunks, cb) {
        const bufs = chunks.map((c) => c.chunk as Buffer);
        const total = bufs.reduce((n, b) => n + b.length, 0);
        fh.writev(bufs, options.append ? undefined : written).then(async (r) => {
          written += r.bytesWritten;
          if (r.bytesWritten < total) await writeAll(Buffer.concat(bufs).subarray(r.bytesWritten));
          cb();
        }).catch((e: unknown) => cb(wrap(e)));
      },
    });
    let finished: Promise<void> | undefined;
    const end = () => new Promise<void>((resolve, reject) => {
      if (stream.destroyed || stream.writableFinished) return resolve();
      stream.once('error', reject);
      stream.end(() => resolve());
    });
    // A write that failed (ENOSPC) destroys the stream; commit must then fail too, never keep a
    // file with missing bytes (end() alone would resolve at once on a destroyed stream).
    let failure: Error | undefined;
    stream.on('error', (e: Error) => { failure ??= e; });
    const finish = (keep: boolean) => {
      finished ??= (async () => {
        try {
          await end();
          const failed = failure ?? stream.errored;
          if (keep && failed) throw failed;
          if (keep) await fh.sync();
        } finally {
          await fh.close().catch(() => undefined);
          if (!keep) await rm(full, { force: true });
        }
      })();
      return finished;
    };
    return {
      stream,
      size: () => existing + written,
      commit: async () => finish(true).catch((e: unknown) => { throw this.wrap(e, path); }),
      cancel: async () => finish(false).catch(() => undefined),
    };
  }

  async list(path: string): Promise<string[]> {
    const full = this.full(path);
    try {
      const names = await readdir(full);
      const prefix = path === '/' ? '/' : `${path}/`;
      return names.filter((n) => !n.startsWith(TEMP_PREFIX)).sort().map((n) => prefix + n);
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async move(source: string, dest: string): Promise<void> {
    const from = this.full(source);
    const to = this.full(dest);
    try {
      await stat(from);
      await mkdir(dirname(to), { recursive: true });
      await rename(from, to);
      await fsyncDir(dirname(to));
    } catch (e) {
      throw this.wrap(e, source);
    }
  }

  async delete(path: string): Promise<void> {
    const full = this.full(path);
    try {
      await stat(full);
      await rm(full, { recursive: true, force: true });
    } catch (e) {
      throw this.wrap(e, path);
    }
  }
}
