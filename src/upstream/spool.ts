/**
 * Where a ranged fetch's later chunks wait for their turn: an unnamed file on disk, not memory
 * (issue 17: held in memory, they were ~70 MiB of the cold-path peak RSS). Each ranged fetch
 * gets one file, written at the blob's own offsets and read back in order; the kernel's page
 * cache, not the process, holds what is read back soon.
 *
 * The file has no name from the start where Linux offers O_TMPFILE, so a crash leaves nothing
 * behind; elsewhere it is created under a random name and unlinked at once.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** Linux's O_TMPFILE (__O_TMPFILE | O_DIRECTORY); Node does not export it. */
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;

export class SpoolDir {
  private written = 0;

  constructor(readonly dir: string) {}

  /** Bytes in the spool files open now. */
  get bytes(): number { return this.written; }

  /** A new empty spool file; rejects when the directory cannot hold one (read-only, missing). */
  async open(): Promise<SpoolFile> {
    const mode = 0o600;
    try {
      return new SpoolFile(await open(this.dir, O_TMPFILE | constants.O_RDWR, mode), this.count);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Not Linux, or a filesystem without unnamed files: a name, gone at once.
      if (code !== 'EOPNOTSUPP' && code !== 'EISDIR' && code !== 'EINVAL') throw err;
      const path = join(this.dir, `.stowage-spool-${randomBytes(8).toString('hex')}`);
      const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, mode);
      await unlink(path).catch(async (e: unknown) => { await handle.close(); throw e; });
      return new SpoolFile(handle, this.count);
    }
  }

  private readonly count = (delta: number): void => { this.written += delta; };
}

export class SpoolFile {
  private bytes = 0;
  private closed = false;

  constructor(private readonly handle: FileHandle, private readonly count: (delta: number) => void) {}

  /** Writes `parts`, one after another, at `position`. */
  async write(parts: Buffer[], position: number): Promise<void> {
    let rest = parts;
    let at = position;
    let total = 0;
    for (const p of parts) total += p.length;
    while (rest.length > 0) {
      const { bytesWritten } = await this.handle.writev(rest, at);
      if (bytesWritten <= 0) throw new Error('the spool file took no bytes');
      at += bytesWritten;
      rest = after(rest, bytesWritten);
    }
    if (!this.closed) {
      this.bytes += total;
      this.count(total);
    }
  }

  /** Reads exactly `length` bytes at `position` (written before). */
  async read(position: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(out, done, length - done, position + done);
      if (bytesRead <= 0) throw new Error(`the spool file ended at ${position + done}, ${length - done} bytes short`);
      done += bytesRead;
    }
    return out;
  }

  /**
   * Closes the file once its reads and writes in flight are done (FileHandle waits for them, so
   * its descriptor is never reused under a pending write). Safe to call twice.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.count(-this.bytes);
    this.handle.close().catch(() => undefined);
  }
}

/** What is left of `parts` once its first `n` bytes are written (a short writev). */
function after(parts: Buffer[], n: number): Buffer[] {
  let skip = n;
  let i = 0;
  while (i < parts.length && skip >= parts[i]!.length) skip -= parts[i++]!.length;
  if (i >= parts.length) return [];
  return skip > 0 ? [parts[i]!.subarray(skip), ...parts.slice(i + 1)] : parts.slice(i);
}
