/** The swift driver's FileWriter: one object below a segment, else segments and an SLO manifest. */
import { DriverError, StorageError, type FileWriter } from '../driver.js';
import { once, PartBuffer } from './object-store.js';
import type { SloSegment, SwiftDriver } from './swift.js';

export class SwiftWriter {
  private readonly buffer: PartBuffer;
  private readonly added: SloSegment[] = [];

  constructor(private readonly d: SwiftDriver, private readonly path: string, private readonly name: string,
    private readonly writerId: string, private readonly existing: number, private readonly old: SloSegment[], seed: Buffer | undefined) {
    this.buffer = new PartBuffer(d.chunkSize, (part, i) => this.segment(part, i));
    if (seed) this.buffer.prepend(seed);
  }

  private async segment(part: Buffer, index: number): Promise<void> {
    const n = this.old.length + index + 1;
    const name = `${this.d.segmentDir(this.path)}${this.writerId}/${String(n).padStart(8, '0')}`;
    const etag = await this.d.put(name, part);
    this.added[index] = { path: `/${this.d.client.container}/${name}`, etag, size_bytes: part.length };
  }

  fileWriter(): FileWriter {
    const commit = once(async () => {
      try {
        await this.buffer.end();
        const tail = this.buffer.takeTail();
        if (this.old.length === 0 && this.added.length === 0) {
          if (this.existing > 0 && this.buffer.accepted === 0) return;
          await this.d.put(this.name, tail);
          return;
        }
        if (tail.length > 0) await this.segment(tail, this.buffer.nextIndex);
        if (this.added.length === 0) return;
        await this.d.putManifest(this.name, [...this.old, ...this.added]);
      } catch (e) {
        throw e instanceof StorageError ? e : new DriverError(`swift: ${(e as Error).message}`, this.path, { cause: e });
      }
    });
    const cancel = once(async () => {
      this.buffer.stream.destroy();
      await this.buffer.settled().catch(() => undefined);
      await Promise.all(this.added.filter(Boolean).map(async (s) => {
        const r = await this.d.call({ method: 'DELETE', object: s.path.slice(this.d.client.container.length + 2) }, [200, 204, 404]).catch(() => undefined);
        await r?.body.dump();
      }));
      if (this.existing === 0) await this.d.delete(this.path).catch(() => undefined);
    });
    return { stream: this.buffer.stream, size: () => this.existing + this.buffer.accepted, commit, cancel };
  }
}
