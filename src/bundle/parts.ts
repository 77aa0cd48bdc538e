/**
 * A tar bundle on disk: one file, or numbered parts for removable media ("bundle.tar.000",
 * ".001", ...; `cat bundle.tar.* > bundle.tar` joins them). Every file's sha256 is computed as
 * it is written and listed in SHA256SUMS beside it (`sha256sum -c SHA256SUMS` checks it); files
 * are written under temporary names and renamed once complete, so a name that exists is whole.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, readdir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';

export const SUMS_FILE = 'SHA256SUMS';

export const partName = (out: string, i: number): string => `${out}.${String(i).padStart(3, '0')}`;

interface OpenPart { path: string; fh: FileHandle; hash: Hash; written: number }

/** A Writable over one file or numbered parts of at most partSize bytes each. */
export class PartWriter extends Writable {
  private current: OpenPart | undefined;
  private readonly done: Array<{ path: string; sha256: string; size: number }> = [];
  bytes = 0;

  constructor(private readonly out: string, private readonly partSize?: number) {
    super({ highWaterMark: 1024 * 1024 });
  }

  private async next(): Promise<OpenPart> {
    if (this.current) await this.close(this.current);
    const path = this.partSize === undefined ? this.out : partName(this.out, this.done.length);
    const fh = await open(`${path}.partial`, 'w');
    this.current = { path, fh, hash: createHash('sha256'), written: 0 };
    return this.current;
  }

  private async close(p: OpenPart): Promise<void> {
    await p.fh.sync();
    await p.fh.close();
    await rename(`${p.path}.partial`, p.path);
    this.done.push({ path: p.path, sha256: p.hash.digest('hex'), size: p.written });
    this.current = undefined;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    void this.put(chunk).then(() => cb(), cb);
  }

  private async put(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      let part = this.current;
      if (!part || (this.partSize !== undefined && part.written >= this.partSize)) part = await this.next();
      const room = this.partSize === undefined ? chunk.length - offset : Math.min(chunk.length - offset, this.partSize - part.written);
      const slice = chunk.subarray(offset, offset + room);
      await part.fh.write(slice);
      part.hash.update(slice);
      part.written += slice.length;
      this.bytes += slice.length;
      offset += room;
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    void (async () => {
      if (!this.current && this.done.length === 0) await this.next();
      if (this.current) await this.close(this.current);
      await writeSums(dirname(this.out), this.done.map((d) => ({ name: basename(d.path), sha256: d.sha256 })), basename(this.out));
    })().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    const p = this.current;
    this.current = undefined;
    void (async () => {
      if (p) {
        await p.fh.close().catch(() => undefined);
        await rm(`${p.path}.partial`, { force: true });
      }
    })().then(() => cb(err), () => cb(err));
  }

  /** The files written, in order, once the stream has finished. */
  get files(): Array<{ path: string; sha256: string; size: number }> { return [...this.done]; }
}

/** Replaces the lines for `stem` and its parts in dir/SHA256SUMS, keeping other bundles' lines. */
async function writeSums(dir: string, entries: Array<{ name: string; sha256: string }>, stem: string): Promise<void> {
  const path = join(dir, SUMS_FILE);
  const kept = (await readFile(path, 'utf8').catch(() => '')).split('\n')
    .filter((l) => l.trim() !== '' && !isOurs(l.replace(/^[a-f0-9]{64} [ *]/, ''), stem));
  const lines = [...kept, ...entries.map((e) => `${e.sha256}  ${e.name}`)];
  await writeFile(`${path}.partial`, `${lines.join('\n')}\n`);
  await rename(`${path}.partial`, path);
}

const isOurs = (name: string, stem: string): boolean => name === stem || new RegExp(`^${escape(stem)}\\.\\d{3}$`).test(name);
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The files of a tar bundle, given the .tar, one of its parts, or the name the parts share. */
export async function findParts(path: string): Promise<string[]> {
  const m = /^(.*\.tar)\.\d{3}$/.exec(path);
  const stem = m ? m[1]! : path;
  if (!m && existsSync(stem)) return [stem];
  const dir = dirname(stem);
  const base = basename(stem);
  const names = (await readdir(dir)).filter((n) => isOurs(n, base) && n !== base).sort();
  return names.map((n) => join(dir, n));
}

/** sha256 of each file, from dir/SHA256SUMS, when there is one. */
export async function readSums(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const text = await readFile(join(dir, SUMS_FILE), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const m = /^([a-f0-9]{64}) [ *](.+)$/.exec(line.trim());
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

export interface PartCheck { file: string; expected?: string; actual: string; size: number }

/**
 * The parts read one after the other as one stream, each hashed on the way; `checks` holds each
 * part's sha256 (and what SHA256SUMS says) once it has been read to its end.
 */
export function readParts(files: string[], onBytes?: (n: number) => void, sums?: Map<string, string>): { stream: Readable; checks: PartCheck[] } {
  const checks: PartCheck[] = [];
  async function* chunks(): AsyncGenerator<Buffer> {
    for (const file of files) {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
        onBytes?.(chunk.length);
        yield chunk;
      }
      const expected = sums?.get(basename(file));
      checks.push({ file, actual: hash.digest('hex'), size, ...(expected ? { expected } : {}) });
    }
  }
  // Reads run ahead of the writes by a few chunks, so disk reads and writes overlap.
  return { stream: Readable.from(chunks(), { objectMode: false, highWaterMark: 8 * 1024 * 1024 }), checks };
}
