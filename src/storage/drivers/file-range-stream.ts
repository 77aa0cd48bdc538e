/**
 * A Readable over [start, end) of an open file. It ends at `end` or at the end of the file,
 * whichever comes first, and closes the file however it finishes. A consumer that claims pooled
 * chunks (see chunk-pool.ts) before reading gets page-aligned, reused buffers; anyone else gets a
 * fresh buffer per read, as fs.createReadStream gives.
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { CHUNK_SIZE, offerPooledChunks, type ChunkPool } from '../chunk-pool.js';

export class FileRangeStream extends Readable {
  private position: number;
  private pooled = false;

  constructor(
    private readonly file: FileHandle,
    start: number,
    private readonly end: number,
    private readonly pool: ChunkPool,
  ) {
    super({ highWaterMark: CHUNK_SIZE });
    this.position = start;
    offerPooledChunks(this, () => {
      this.pooled = true;
      return (view) => pool.give(view);
    });
  }

  override _read(): void {
    const wanted = Math.min(CHUNK_SIZE, this.end - this.position);
    if (wanted <= 0) {
      this.push(null);
      return;
    }
    const pooled = this.pooled;
    const chunk = pooled ? this.pool.take() : Buffer.allocUnsafeSlow(wanted);
    this.file.read(chunk, 0, wanted, this.position).then(
      ({ bytesRead }) => {
        if (this.destroyed || bytesRead === 0) {
          if (pooled) this.pool.drop(chunk);
          if (!this.destroyed) this.push(null);
          return;
        }
        this.position += bytesRead;
        const view = bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead);
        if (pooled) this.pool.lend(chunk, view);
        this.push(view);
      },
      (e: unknown) => {
        if (pooled) this.pool.drop(chunk);
        this.destroy(e as Error);
      },
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.file.close().then(
      () => callback(error),
      (closeError: unknown) => callback(error ?? (closeError as Error)),
    );
  }
}
