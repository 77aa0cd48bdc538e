/** The stream one client reads a blob fill through (see blob-fill.ts). */
import { Readable } from 'node:stream';
import type { BlobFill } from './blob-fill.js';

/**
 * One client's stream of a fill. Pushes every chunk available at once in one _read (no promise
 * per window chunk), keeps a file stream open across reads while it catches up from the staging
 * file (honouring backpressure), and sleeps on the fill's change signal when it has caught up.
 */
export class FillReader extends Readable {
  private pos = 0;
  private busy = false;
  private wanted = false;
  /** The file stream this reader is catching up from, if any. */
  private file: AsyncIterator<Buffer> | undefined;

  constructor(private readonly fill: BlobFill) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _read(): void {
    // A _read while pumping must not be lost: the stream asks once and then waits for a push.
    if (this.busy) {
      this.wanted = true;
      return;
    }
    this.busy = true;
    this.pump().then(() => {
      this.busy = false;
      if (this.wanted) {
        this.wanted = false;
        this._read();
      }
    }, (err: unknown) => this.destroy(err as Error));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const file = this.file;
    this.file = undefined;
    void file?.return?.();
    cb(err);
  }

  /** Pushes until the consumer is full, the fill has nothing new, or the end. */
  private async pump(): Promise<void> {
    while (!this.destroyed) {
      if (this.file) {
        const r = await this.file.next();
        if (r.done) {
          this.file = undefined;
          continue;
        }
        this.pos += r.value.length;
        if (!this.push(r.value)) return;
        continue;
      }
      const next = this.fill.next(this.pos);
      if (next === 'end') {
        this.push(null);
        return;
      }
      if (next instanceof Error) throw next;
      if (next === 'wait') {
        await this.fill.changed;
        continue;
      }
      if (!Array.isArray(next)) {
        this.file = (await next)[Symbol.asyncIterator]();
        continue;
      }
      let more = true;
      for (const slice of next) {
        this.pos += slice.length;
        more = this.push(slice);
      }
      if (!more) return;
    }
  }
}
