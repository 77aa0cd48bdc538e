/**
 * One upstream fetch of one blob, shared by every client that asks for it meanwhile
 * (single-flight). The upstream body is hashed and written to a staging file under the cache
 * repository's _uploads/; every client, the first included, reads that growing file. The last
 * byte is held back from every client until the digest and size have verified, so no client ever
 * receives a complete, well-formed response of wrong bytes: on a mismatch the staging file is
 * deleted and every client connection is destroyed mid-body. On success the file is moved into
 * blobs/ (atomic) and linked into the cache repository.
 *
 * The fill belongs to no client: it runs to the end even if every client disconnects.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { RegistryError } from '../errors.js';
import type { MetadataIndex } from '../metadata/index.js';
import { createDigester, digestAlgorithm, digestFromHash, type Digest } from '../oci/digest.js';
import type { RepoName } from '../oci/reference.js';
import { BLOB_MEDIA_TYPE, type BlobStore } from '../registry/blob-store.js';
import type { EventSink } from '../notify/events.js';
import { isPathNotFound, type FileWriter, type StorageDriver } from '../storage/driver.js';
import { blobDataPath, uploadDataPath, uploadDir, uploadStartedAtPath } from '../storage/layout.js';

/** Bytes withheld from clients until verification: one is enough to keep a response incomplete. */
const HOLDBACK_BYTES = 1;
const READ_CHUNK = 1024 * 1024;

export interface FillSource {
  /** Size announced by the upstream (Content-Length), if any. */
  size: number | undefined;
  body: Readable;
}

export interface FillDeps {
  storage: StorageDriver;
  blobs: BlobStore;
  metadata: MetadataIndex;
  log: Logger;
  onUpstreamBytes?: (n: number) => void;
  onMismatch?: () => void;
  /** Reports the fill as a `fetch` event, committed with the blob's index record. */
  events?: EventSink;
}

type FillState = 'filling' | 'verified' | 'failed';

export class BlobFill {
  state: FillState = 'filling';
  /** Settles at the next change (bytes written, verified, failed); every waiting reader shares it. */
  private tick!: Promise<void>;
  private wake!: () => void;
  /** Bytes written to the staging file so far (readable by clients, not yet fsynced). */
  written = 0;
  error: Error | undefined;
  /** Staging file while filling; the blob's own path once verified. */
  path: string;
  /** Resolves when the blob is verified and committed; rejects when the fill failed. */
  readonly done: Promise<void>;
  private settle!: { resolve: () => void; reject: (e: Error) => void };
  private readonly uuid = randomUUID();
  /** Set while run() pumps the upstream body (see abort()). */
  private body: Readable | undefined;

  constructor(
    readonly digest: Digest,
    readonly cacheRepo: RepoName,
    readonly upstreamName: string,
    readonly size: number | undefined,
    private readonly deps: FillDeps,
  ) {
    this.signalChange();
    this.path = uploadDataPath(cacheRepo, this.uuid);
    this.done = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });
    this.done.catch(() => undefined); // observed by readers; never an unhandled rejection
  }

  private signalChange(): void {
    const previous = this.wake;
    this.tick = new Promise((resolve) => { this.wake = resolve; });
    previous?.();
  }

  /** Opens the staging file. Call before run(); failures here mean no fill at all. */
  async open(): Promise<FileWriter> {
    const { storage, metadata } = this.deps;
    await storage.putContent(uploadStartedAtPath(this.cacheRepo, this.uuid), Buffer.from(new Date().toISOString()));
    metadata.addUpload(this.uuid, this.cacheRepo, Date.now());
    return storage.writer(this.path);
  }

  /** Pumps the upstream body into the staging file, verifies, commits. Never throws. */
  async run(source: FillSource, writer: FileWriter): Promise<void> {
    const { log } = this.deps;
    const hash = createDigester(digestAlgorithm(this.digest));
    let received = 0;
    this.body = source.body;
    try {
      for await (const chunk of source.body as AsyncIterable<Buffer>) {
        received += chunk.length;
        if (this.size !== undefined && received > this.size) throw new FillError('upstream sent more bytes than announced');
        hash.update(chunk);
        this.deps.onUpstreamBytes?.(chunk.length);
        const len = chunk.length;
        const ok = writer.stream.write(chunk, () => {
          this.written += len;
          this.signalChange();
        });
        if (!ok) await new Promise<void>((r) => writer.stream.once('drain', r));
      }
      await writer.commit();
      if (this.size !== undefined && received !== this.size) {
        throw new FillError(`upstream body ended after ${received} of ${this.size} bytes`);
      }
      const actual = digestFromHash(digestAlgorithm(this.digest), hash);
      if (actual !== this.digest) {
        this.deps.onMismatch?.();
        throw new FillError(`digest mismatch: upstream sent ${actual}`);
      }
      await this.deps.blobs.commitVerified(this.path, this.digest, received, 'cached', this.upstreamName, () => this.deps.events?.record({
        action: 'fetch', upstream: this.upstreamName,
        target: { kind: 'blob', repository: this.cacheRepo, digest: this.digest, size: received, mediaType: BLOB_MEDIA_TYPE },
      }));
      this.path = blobDataPath(this.digest);
      await this.deps.blobs.link(this.cacheRepo, this.digest);
      this.written = received;
      await this.removeStaging();
      this.state = 'verified';
      log.info({ digest: this.digest, repo: this.cacheRepo, bytes: received }, 'blob cached');
      this.signalChange();
      this.settle.resolve();
    } catch (err) {
      source.body.destroy();
      await writer.cancel().catch(() => undefined);
      await this.removeStaging().catch(() => undefined);
      this.error = err instanceof Error ? err : new Error(String(err));
      this.state = 'failed';
      log.warn({ digest: this.digest, repo: this.cacheRepo, received, err: this.error.message }, 'blob fill failed; nothing cached');
      this.signalChange();
      this.settle.reject(this.error);
    }
  }

  /**
   * Shutdown past the drain time: cuts the upstream body, so run() fails the usual way (nothing
   * partial is committed, the staging file goes, readers' connections break).
   */
  abort(): void {
    if (this.state === 'filling') this.body?.destroy(new FillError('stopped: the server is shutting down'));
  }

  /** A client's view of the blob: bytes as they land, the last one only after verification. */
  reader(): Readable {
    return Readable.from(this.chunks(), { objectMode: false, highWaterMark: READ_CHUNK });
  }

  private async *chunks(): AsyncGenerator<Buffer> {
    let pos = 0;
    for (;;) {
      if (this.state === 'failed') {
        throw new RegistryError('UNAVAILABLE', 'upstream blob failed verification or was cut short', { status: 502 });
      }
      if (this.state === 'verified') {
        // The rest is verified and in place: one plain read to the end.
        if (pos < this.written) yield* (await this.deps.storage.reader(this.path, { offset: pos })) as AsyncIterable<Buffer>;
        return;
      }
      // While the fill runs, read whole chunks: each read opens the file, so chasing every small
      // write as it lands costs more than it saves (measured in bench/proxy.mjs).
      if (this.readableLimit() - pos >= READ_CHUNK) {
        const chunk = await this.readAt(pos, READ_CHUNK);
        pos += chunk.length;
        yield chunk;
        continue;
      }
      await this.tick;
    }
  }

  private async readAt(offset: number, length: number): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      try {
        const stream = await this.deps.storage.reader(this.path, { offset, length });
        const parts: Buffer[] = [];
        for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
        return Buffer.concat(parts);
      } catch (e) {
        // The staging file was just moved into blobs/: read again at the new path.
        if (attempt < 20 && isPathNotFound(e)) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        throw e;
      }
    }
  }

  private async removeStaging(): Promise<void> {
    const { storage, metadata } = this.deps;
    try {
      await storage.delete(uploadDir(this.cacheRepo, this.uuid));
    } catch (e) {
      if (!isPathNotFound(e)) throw e;
    }
    metadata.deleteUpload(this.uuid);
  }

  /** How far a client may read right now. */
  readableLimit(): number {
    if (this.state === 'verified') return this.written;
    if (this.size === undefined) return this.written; // chunked to the client: its end is only sent after verification
    return Math.min(this.written, this.size - HOLDBACK_BYTES);
  }
}

export class FillError extends Error {}
