/**
 * In-memory StorageDriver for tests and `storage: inmemory`. Directories are implicit: a directory
 * exists while some file lives under it. A writer's bytes are readable as soon as written, like
 * a file on disk (the pull-through cache reads a blob while it is being filled).
 */
import { Readable, Writable } from 'node:stream';
import {
  checkPath, InvalidOffsetError, PathNotFoundError,
  type FileInfo, type FileWriter, type ReadOptions, type StorageDriver,
} from '../driver.js';

interface MemFile { chunks: Buffer[]; size: number; modTime: Date }

function flatten(f: MemFile): Buffer {
  if (f.chunks.length > 1) f.chunks = [Buffer.concat(f.chunks, f.size)];
  return f.chunks[0] ?? Buffer.alloc(0);
}

export class MemoryDriver implements StorageDriver {
  readonly name = 'inmemory';
  readonly readsWhileWriting = true;
  private readonly files = new Map<string, MemFile>();

  private isDir(path: string): boolean {
    const prefix = path === '/' ? '/' : `${path}/`;
    for (const k of this.files.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  private file(path: string): MemFile {
    const f = this.files.get(path);
    if (!f) throw new PathNotFoundError('path not found', path);
    return f;
  }

  /** Nothing to reach. */
  async check(): Promise<void> {}

  async stat(path: string): Promise<FileInfo> {
    checkPath(path);
    const f = this.files.get(path);
    if (f) return { path, size: f.size, modTime: f.modTime, isDir: false };
    if (this.isDir(path)) return { path, size: 0, modTime: new Date(), isDir: true };
    throw new PathNotFoundError('path not found', path);
  }

  async getContent(path: string): Promise<Buffer> {
    checkPath(path);
    return Buffer.from(flatten(this.file(path)));
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    checkPath(path);
    this.files.set(path, { chunks: [Buffer.from(data)], size: data.length, modTime: new Date() });
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    checkPath(path);
    const f = this.file(path);
    const offset = options.offset ?? 0;
    if (offset > f.size) throw new InvalidOffsetError(`offset ${offset} beyond size ${f.size}`, path);
    const end = options.length === undefined ? f.size : Math.min(f.size, offset + options.length);
    const data = Buffer.from(flatten(f).subarray(offset, end));
    return Readable.from(data.length > 0 ? [data] : [], { objectMode: false });
  }

  async writer(path: string, options: { append?: boolean } = {}): Promise<FileWriter> {
    checkPath(path);
    let f = this.files.get(path);
    if (!f || !options.append) {
      f = { chunks: [], size: 0, modTime: new Date() };
      this.files.set(path, f);
    }
    const file = f;
    let finished = false;
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        file.chunks.push(Buffer.from(chunk));
        file.size += chunk.length;
        file.modTime = new Date();
        cb();
      },
    });
    const end = () => new Promise<void>((resolve, reject) => {
      if (stream.writableFinished || stream.destroyed) return resolve();
      stream.once('error', reject);
      stream.end(() => resolve());
    });
    return {
      stream,
      size: () => file.size,
      commit: async () => {
        if (finished) return;
        finished = true;
        await end();
      },
      cancel: async () => {
        if (finished) return;
        finished = true;
        await end().catch(() => undefined);
        if (this.files.get(path) === file) this.files.delete(path);
      },
    };
  }

  async list(path: string): Promise<string[]> {
    checkPath(path);
    if (this.files.has(path) || !this.isDir(path)) throw new PathNotFoundError('not a directory', path);
    const prefix = path === '/' ? '/' : `${path}/`;
    const children = new Set<string>();
    for (const k of this.files.keys()) {
      if (!k.startsWith(prefix)) continue;
      children.add(prefix + k.slice(prefix.length).split('/')[0]!);
    }
    return [...children].sort();
  }

  async move(source: string, dest: string): Promise<void> {
    checkPath(source);
    checkPath(dest);
    const f = this.file(source);
    this.files.delete(source);
    this.files.set(dest, f);
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    if (this.files.delete(path)) return;
    const prefix = path === '/' ? '/' : `${path}/`;
    let found = false;
    for (const k of [...this.files.keys()]) {
      if (k.startsWith(prefix)) {
        this.files.delete(k);
        found = true;
      }
    }
    if (!found) throw new PathNotFoundError('path not found', path);
  }
}
