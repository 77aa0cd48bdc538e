/** The stream one client reads a blob fill through (see blob-fill.ts). */
import { Readable } from 'node:stream';
import { claimPooledChunks, offerPooledChunks } from '../storage/chunk-pool.js';
import type { BlobFill } from './blob-fill.js';

/**
 * One client's stream of a fill. Pushes every chunk available at once in one _read (no promise
 * per window chunk), keeps a file stream open across reads while it catches up from the staging
 * file (honouring backpressure), and sleeps on the fill's change signal when it has caught up.
 *
 * A consumer that claims pooled chunks (http/send-body.ts) gets the file streams' pooled,
 * reused buffers passed through: several clients behind the window otherwise read a fresh 1 MiB
 * buffer each time, and that allocation rate alone ran V8 into ~100 full mark-compacts per
 * 512 MiB with 8 clients (bench/prof-cold.mjs CLIENTS=8). The release function is handed every
 * chunk, window chunks included; those were never lent and it ignores them.
 */
export class FillReader extends Readable {
  private pos = 0;
  private busy = false;
  private wanted = false;
  /** The file stream this reader is catching up from, if any. */
  private file: AsyncIterator<Buffer> | undefined;
  /** Set once our consumer claimed pooled chunks: file streams are then claimed too. */
  private pooled = false;
  /** How the current file stream takes its pooled chunks back, if it lends them. */
  private fileRelease: ((view: Buffer) => void) | undefined;
  /** Pooled chunks handed on, with the release of the stream that lent each. */
  private readonly lent = new WeakMap<Buffer, (view: Buffer) => void>();

  constructor(private readonly fill: BlobFill) {
    super({ highWaterMark: 1024 * 1024 });
    offerPooledChunks(this, () => {
      this.pooled = true;
      return (view) => {
        const release = this.lent.get(view);
        this.lent.delete(view);
        release?.(view);
      };
    });
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
        if (this.fileRelease) this.lent.set(r.value, this.fileRelease);
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
        const stream = await next;
        this.fileRelease = this.pooled ? claimPooledChunks(stream) : undefined;
        this.file = stream[Symbol.asyncIterator]();
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
