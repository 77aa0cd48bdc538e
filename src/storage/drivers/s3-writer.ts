/** The s3 driver's FileWriter: buffered parts, a multipart upload once there is more than one part. */
import type { CompletedPart } from '@aws-sdk/client-s3';
import { DriverError, StorageError, type FileWriter } from '../driver.js';
import { once, PartBuffer } from './object-store.js';
import type { S3Driver } from './s3.js';

export class S3Writer {
  private upload: Promise<{ uploadId: string; parts: CompletedPart[] }> | undefined;
  /** Parts this writer uploaded, by part index (after the copied ones). */
  private readonly uploaded: CompletedPart[] = [];
  private readonly buffer: PartBuffer;

  constructor(private readonly d: S3Driver, private readonly key: string, private readonly path: string,
    private readonly existing: number, chunkSize: number, seed: Buffer | undefined) {
    this.buffer = new PartBuffer(chunkSize, (part, i) => this.flushPart(part, i));
    // An append to a file smaller than a part starts with its bytes in the buffer; a bigger one
    // is copied server-side as the first parts of the multipart upload.
    if (seed) this.buffer.prepend(seed);
  }

  private multipart() {
    this.upload ??= this.d.startMultipart(this.key, this.existing >= this.d.minimumPartSize ? this.existing : 0);
    return this.upload;
  }

  private async flushPart(part: Buffer, index: number): Promise<void> {
    const { uploadId, parts: copied } = await this.multipart();
    this.uploaded[index] = await this.d.uploadPart(this.key, uploadId, copied.length + index + 1, part);
  }

  fileWriter(): FileWriter {
    const commit = once(async () => {
      try {
        await this.buffer.end();
        const tail = this.buffer.takeTail();
        if (!this.upload) {
          // Nothing flushed yet. An append of nothing changes nothing; anything else that fits
          // in one part (old bytes included) is one PutObject.
          if (this.existing > 0 && this.buffer.accepted === 0) return;
          if (this.existing < this.d.minimumPartSize) {
            await this.d.put(this.key, tail);
            return;
          }
        }
        const { uploadId, parts: copied } = await this.multipart();
        if (tail.length > 0 || copied.length + this.uploaded.length === 0) await this.flushPart(tail, this.buffer.nextIndex);
        await this.d.complete(this.key, uploadId, [...copied, ...this.uploaded.filter(Boolean)]);
      } catch (e) {
        await this.abortUpload();
        throw e instanceof StorageError ? e : new DriverError(`s3: ${(e as Error).message}`, this.path, { cause: e });
      }
    });
    const cancel = once(async () => {
      this.buffer.stream.destroy();
      await this.buffer.settled().catch(() => undefined);
      await this.abortUpload();
      if (this.existing === 0) {
        await this.d.delete(this.path).catch(() => undefined);
      }
    });
    return {
      stream: this.buffer.stream,
      size: () => this.existing + this.buffer.accepted,
      commit,
      cancel,
    };
  }

  private async abortUpload(): Promise<void> {
    const upload = await this.upload?.catch(() => undefined);
    if (upload) await this.d.abort(this.key, upload.uploadId);
  }
}
