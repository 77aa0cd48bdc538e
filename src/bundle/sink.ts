/**
 * Where an export writes: an OCI image layout directory, or a tar of one (optionally cut into
 * parts). A tar leads with oci-layout and index.json, so a reader learns what it holds before
 * the blobs; a directory writes them last, so a directory with an index.json is complete.
 */
import { mkdir, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import tar from 'tar-stream';
import type { Digest } from '../oci/digest.js';
import { blobPathIn, INDEX_FILE, LAYOUT_FILE, layoutFile } from './layout.js';
import { PartWriter } from './parts.js';

export interface BundleSink {
  /** True for a tar: once a blob's entry has started, a failure ends the whole bundle. */
  readonly sequential: boolean;
  /** True when the sink already holds this blob (a directory export being resumed). */
  has(digest: Digest, size: number): Promise<boolean>;
  begin(index: Buffer): Promise<void>;
  writeBlob(digest: Digest, size: number, body: Readable): Promise<void>;
  /** Completes the bundle; returns the files written (the tar or its parts, or the directory). */
  finish(): Promise<string[]>;
  abort(): Promise<void>;
}

const FIXED_MTIME = new Date(0);

export class DirSink implements BundleSink {
  readonly sequential = false;
  private index: Buffer | undefined;
  constructor(private readonly dir: string) {}

  async has(digest: Digest, size: number): Promise<boolean> {
    return (await stat(join(this.dir, blobPathIn(digest))).then((s) => s.size, () => -1)) === size;
  }

  async begin(index: Buffer): Promise<void> {
    this.index = index;
    await mkdir(this.dir, { recursive: true });
    // An index.json from an earlier export would describe blobs this one has not written yet.
    await rm(join(this.dir, INDEX_FILE), { force: true });
  }

  async writeBlob(digest: Digest, size: number, body: Readable): Promise<void> {
    const path = join(this.dir, blobPathIn(digest));
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.partial-${randomBytes(4).toString('hex')}`;
    const fh = await open(temp, 'w');
    try {
      let written = 0;
      await pipeline(body, async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          await fh.write(chunk);
          written += chunk.length;
        }
      });
      if (written !== size) throw new Error(`${digest}: read ${written} of ${size} bytes from storage`);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw e;
    }
    await fh.close();
    await rename(temp, path);
  }

  async finish(): Promise<string[]> {
    await writeFile(join(this.dir, LAYOUT_FILE), layoutFile());
    await writeFile(join(this.dir, `${INDEX_FILE}.partial`), this.index ?? Buffer.from('{"schemaVersion":2,"manifests":[]}'));
    await rename(join(this.dir, `${INDEX_FILE}.partial`), join(this.dir, INDEX_FILE));
    return [this.dir];
  }

  async abort(): Promise<void> { /* blobs written so far stay: a later export resumes from them */ }
}

export class TarSink implements BundleSink {
  readonly sequential = true;
  private readonly pack = tar.pack();
  private readonly out: PartWriter;
  private readonly piped: Promise<void>;

  constructor(file: string, partSize?: number) {
    this.out = new PartWriter(file, partSize);
    this.piped = pipeline(this.pack, this.out);
    this.piped.catch(() => undefined);
  }

  async has(): Promise<boolean> { return false; }

  private add(name: string, bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pack.entry({ name, size: bytes.length, mode: 0o644, mtime: FIXED_MTIME }, bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  async begin(index: Buffer): Promise<void> {
    await this.add(LAYOUT_FILE, layoutFile());
    await this.add(INDEX_FILE, index);
  }

  async writeBlob(digest: Digest, size: number, body: Readable): Promise<void> {
    let settle!: { resolve: () => void; reject: (e: Error) => void };
    const written = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });
    const entry = this.pack.entry({ name: blobPathIn(digest), size, mode: 0o644, mtime: FIXED_MTIME }, (err) => (err ? settle.reject(err) : settle.resolve()));
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (!entry.write(chunk)) await new Promise<void>((r) => entry.once('drain', r));
      }
      entry.end(() => undefined);
    } catch (e) {
      entry.destroy(e as Error);
      throw e;
    }
    await written;
  }

  async finish(): Promise<string[]> {
    this.pack.finalize();
    await this.piped;
    return this.out.files.map((f) => f.path);
  }

  async abort(): Promise<void> {
    this.pack.destroy();
    this.out.destroy();
    await this.piped.catch(() => undefined);
  }

  get bytesWritten(): number { return this.out.bytes; }
}
