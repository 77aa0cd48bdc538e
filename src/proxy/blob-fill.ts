/**
 * One upstream fetch of one blob, shared by every client that asks for it meanwhile
 * (single-flight). The upstream body is hashed and written to a staging file under the cache
 * repository's _uploads/, and handed to clients from memory: the fill keeps the bytes it received
 * most recently (a window of upstream chunks, at most WINDOW_BYTES once written), and a client
 * inside the window takes chunks from it without a copy or a file read. A client behind the
 * window (a slow socket, or one that joined late) reads the bytes before it back from the staging
 * file, which holds everything written so far, then catches up.
 *
 * The last byte is held back from every client until the digest and size have verified, so no
 * client ever receives a complete, well-formed response of wrong bytes: on a mismatch the staging
 * file is deleted and every client connection is destroyed mid-body. The digest is computed in
 * memory as the bytes arrive, so the held-back byte is released as soon as the upstream body ends
 * and verifies; the commit (fsync, atomic move into blobs/, link into the repository) follows.
 * New requests see the blob in blobs/ only after that commit; until then they join this fill.
 *
 * The fill belongs to no client: it runs to the end even if every client disconnects.
 */
import { randomUUID, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { RegistryError } from '../errors.js';
import type { MetadataIndex } from '../metadata/port.js';
import { createDigester, digestAlgorithm, digestFromHash, type Digest } from '../oci/digest.js';
import type { RepoName } from '../oci/reference.js';
import { BLOB_MEDIA_TYPE, type BlobStore } from '../registry/blob-store.js';
import type { EventSink } from '../notify/events.js';
import { isPathNotFound, type FileWriter, type StorageDriver } from '../storage/driver.js';
import { blobDataPath, uploadDataPath, uploadDir, uploadStartedAtPath } from '../storage/layout.js';
import { FillReader } from './fill-reader.js';

/** Bytes withheld from clients until verification: one is enough to keep a response incomplete. */
const HOLDBACK_BYTES = 1;
/**
 * Written bytes kept in memory for clients; bounds a fill's memory whatever the blob size.
 *
 * Kept small on purpose, with the write backlog below: an upstream chunk that stays referenced
 * across two scavenges is promoted to V8's old generation, and a promoted buffer's memory comes
 * back only at a full mark-compact. With a 4 MiB window and an 8 MiB backlog, most cold fills on
 * these machines ran 12-30 mark-compacts per 512 MiB and spent 0.4-0.6 CPU-s more in V8's GC
 * threads; at 1 MiB + 2 MiB none did (bench/prof-cold.mjs, 6 runs each). A client behind the
 * window reads the staging file, which the page cache serves.
 */
const WINDOW_BYTES = 1024 * 1024;
/**
 * Received bytes not yet in the staging file: past the limit the fill stops reading the upstream
 * until the writes are down to the resume mark. Writes stay in flight while the fill reads and
 * hashes (a stream's 'drain' would wait for an empty buffer, leaving the disk or the CPU idle).
 */
const UNWRITTEN_LIMIT = 2 * 1024 * 1024;
const UNWRITTEN_RESUME = 1024 * 1024;

export interface FillSource {
  /** Size announced by the upstream (Content-Length), if any. */
  size: number | undefined;
  body: Readable;
  /** Set when the body is merged from several Range requests (upstream/ranged-body.ts): logged. */
  ranged?: { parallel: boolean; chunks: number; connections: number };
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

/** filling -> verified (every byte may be served) -> committed (in blobs/); or failed. */
type FillState = 'filling' | 'verified' | 'committed' | 'failed';

interface WindowChunk { start: number; bytes: Buffer }

export class BlobFill {
  state: FillState = 'filling';
  /** Settles at the next change (bytes received, written, verified, failed); every waiting reader shares it. */
  private tick!: Promise<void>;
  private wake!: () => void;
  /** Bytes received from the upstream (and hashed) so far. */
  private received = 0;
  /** Bytes in the staging file so far: everything before the window is there. */
  private writtenToFile = 0;
  /** The most recent chunks, in order, contiguous, ending at `received`. */
  private readonly window: WindowChunk[] = [];
  private windowBytes = 0;
  /** Set while run() waits for the staging file writes to catch up. */
  private writeWaiter: (() => void) | undefined;
  error: Error | undefined;
  /** Staging file while filling; the blob's own path once committed. */
  path: string;
  /** Resolves when the blob is verified and committed; rejects when the fill failed. */
  readonly done: Promise<void>;
  private settle!: { resolve: () => void; reject: (e: Error) => void };
  private readonly uuid = randomUUID();
  /** The startedat marker's write (see open()). */
  private marker: Promise<void> = Promise.resolve();
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

  /** Bytes of the blob once verified (its size). */
  get written(): number {
    return this.received;
  }

  private signalChange(): void {
    const previous = this.wake;
    this.tick = new Promise((resolve) => { this.wake = resolve; });
    previous?.();
  }

  /**
   * Opens the staging file. Call before run(); failures here mean no fill at all.
   *
   * The session's `startedat` marker (registry:2's layout; upload purging reads it) is written
   * beside the fill rather than before it: its atomic write is nine file-system round trips, and
   * waiting for them put ~10 ms before every cold blob's first byte. The index records the start
   * at once, and the fill waits for the marker before its commit or its clean-up.
   */
  async open(): Promise<FileWriter> {
    const { storage, metadata } = this.deps;
    const writer = await storage.writer(this.path);
    // The index row goes beside the marker: its write is a round trip to a shared database.
    this.marker = Promise.all([
      metadata.write((w) => w.addUpload(this.uuid, this.cacheRepo, Date.now())),
      storage.putContent(uploadStartedAtPath(this.cacheRepo, this.uuid), Buffer.from(new Date().toISOString())),
    ]).then(() => undefined);
    this.marker.catch(() => undefined); // awaited in run()
    return writer;
  }

  /** Pumps the upstream body into the window and the staging file, verifies, commits. Never throws. */
  async run(source: FillSource, writer: FileWriter): Promise<void> {
    const { log } = this.deps;
    const hash = createDigester(digestAlgorithm(this.digest));
    this.body = source.body;
    try {
      await this.pump(source.body, writer, hash);
      // 'error' is emitted a tick after the failed write: ask the stream itself too.
      const failedWrite = writer.stream.errored;
      if (failedWrite) throw failedWrite;
      if (this.size !== undefined && this.received !== this.size) {
        throw new FillError(`upstream body ended after ${this.received} of ${this.size} bytes`);
      }
      const actual = digestFromHash(digestAlgorithm(this.digest), hash);
      if (actual !== this.digest) {
        this.deps.onMismatch?.();
        throw new FillError(`digest mismatch: upstream sent ${actual}`);
      }
      // Verified in memory: every client may have every byte now, before the commit's fsync.
      this.state = 'verified';
      this.signalChange();
      await this.marker;
      await writer.commit();
      this.writtenToFile = this.received;
      const size = this.received;
      await this.deps.blobs.commitVerified(this.path, this.digest, size, 'cached', this.upstreamName, (w) => this.deps.events?.record({
        action: 'fetch', upstream: this.upstreamName,
        target: { kind: 'blob', repository: this.cacheRepo, digest: this.digest, size, mediaType: BLOB_MEDIA_TYPE },
      }, w));
      this.path = blobDataPath(this.digest);
      await this.deps.blobs.link(this.cacheRepo, this.digest);
      await this.removeStaging();
      this.state = 'committed';
      log.info({ digest: this.digest, repo: this.cacheRepo, bytes: this.received, ...(source.ranged ? { ranged: source.ranged } : {}) }, 'blob cached');
      this.signalChange();
      this.settle.resolve();
    } catch (err) {
      source.body.destroy();
      await writer.cancel().catch(() => undefined);
      await this.marker.catch(() => undefined); // so that removing the directory is the last word
      await this.removeStaging().catch(() => undefined);
      this.error = err instanceof Error ? err : new Error(String(err));
      const verified = this.state === 'verified';
      this.state = 'failed';
      this.window.length = 0;
      this.windowBytes = 0;
      log.warn({ digest: this.digest, repo: this.cacheRepo, received: this.received, err: this.error.message, verified, ...(source.ranged ? { ranged: source.ranged } : {}) },
        verified ? 'verified blob could not be committed; nothing cached' : 'blob fill failed; nothing cached');
      this.signalChange();
      this.settle.reject(this.error);
    }
  }

  /**
   * Moves the upstream body into the hash, the window and the staging file until it ends.
   *
   * The body is read in flowing mode, one chunk per 'data' event. Its async iterator would hand
   * over everything buffered while the fill was paused as one concatenated buffer: a copy, and a
   * fresh multi-MiB allocation each time (seen in strace as 4 MiB mmaps and writes).
   * Past UNWRITTEN_LIMIT the body is paused until the staging-file writes are down to
   * UNWRITTEN_RESUME; writes stay in flight meanwhile (a stream's 'drain' would wait for an empty
   * buffer, leaving the disk or the CPU idle).
   */
  private pump(body: Readable, writer: FileWriter, hash: Hash): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Broken before anyone listened (a reset right after the headers): its events are gone.
      if (body.destroyed) return reject(body.errored ?? new FillError('upstream body closed before its end'));
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        // The 'error' listeners stay: a later error (a cancelled write, a destroyed body) must
        // find one, and settle() ignores it.
        body.off('data', onData);
        body.off('end', onEnd);
        body.off('close', onClose);
        this.writeWaiter = undefined;
        if (err) reject(err);
        else resolve();
      };
      const onEnd = () => settle();
      const onClose = () => settle(new FillError('upstream body closed before its end'));
      const onData = (chunk: Buffer) => {
        try {
          this.accept(chunk, writer, hash);
        } catch (err) {
          settle(err as Error);
          return;
        }
        if (this.received - this.writtenToFile > UNWRITTEN_LIMIT && !this.writeWaiter) {
          body.pause();
          this.writeWaiter = () => {
            this.writeWaiter = undefined;
            if (!settled) body.resume();
          };
        }
      };
      // A failed write (a full disk) must end the fill, not leave it waiting for writes that never complete.
      writer.stream.on('error', settle);
      body.on('error', settle);
      body.once('end', onEnd);
      body.once('close', onClose);
      body.on('data', onData);
    });
  }

  /** One upstream chunk: counted, hashed, into the window, on its way to the staging file. */
  private accept(chunk: Buffer, writer: FileWriter, hash: Hash): void {
    const start = this.received;
    this.received += chunk.length;
    if (this.size !== undefined && this.received > this.size) throw new FillError('upstream sent more bytes than announced');
    hash.update(chunk);
    this.deps.onUpstreamBytes?.(chunk.length);
    this.window.push({ start, bytes: chunk });
    this.windowBytes += chunk.length;
    const end = this.received;
    writer.stream.write(chunk, (err) => {
      if (err) return;
      this.writtenToFile = end;
      this.trimWindow();
      if (this.writeWaiter && this.received - this.writtenToFile <= UNWRITTEN_RESUME) this.writeWaiter();
    });
    this.signalChange();
  }

  /**
   * Shutdown past the drain time: cuts the upstream body, so run() fails the usual way (nothing
   * partial is committed, the staging file goes, readers' connections break).
   */
  abort(): void {
    if (this.state === 'filling') this.body?.destroy(new FillError('stopped: the server is shutting down'));
  }

  /** Drops the oldest chunks that are in the file once the window is over its budget. */
  private trimWindow(): void {
    while (this.windowBytes > WINDOW_BYTES) {
      const first = this.window[0];
      if (!first || first.start + first.bytes.length > this.writtenToFile) return;
      this.window.shift();
      this.windowBytes -= first.bytes.length;
    }
  }

  private windowStart(): number {
    return this.window[0]?.start ?? this.writtenToFile;
  }

  /** A client's view of the blob: bytes as they land, the last one only after verification. */
  reader(): Readable {
    return new FillReader(this);
  }

  /**
   * What a reader at `pos` gets next: chunks from the window (no copies), a stream of the file
   * for bytes behind the window, 'wait' (nothing new yet: await `changed`), 'end', or an error.
   */
  next(pos: number): Buffer[] | Promise<AsyncIterable<Buffer>> | 'wait' | 'end' | Error {
    if (this.state === 'failed') {
      return new RegistryError('UNAVAILABLE', 'upstream blob failed verification or was cut short', { status: 502 });
    }
    const limit = this.readableLimit();
    if (pos >= limit) return this.state === 'verified' || this.state === 'committed' ? 'end' : 'wait';
    // Committed: everything is in place, one plain read to the end.
    if (this.state === 'committed') return this.openAt(pos, limit - pos);
    // Behind the window: what lies before it is in the staging file, where the driver can read
    // a file while it is written; elsewhere (object stores) the reader waits for the commit.
    const windowStart = this.windowStart();
    if (pos < windowStart) return this.deps.storage.readsWhileWriting === false ? 'wait' : this.openAt(pos, windowStart - pos);
    return this.sliceWindow(pos, limit);
  }

  /** Settles at the next change: new bytes, verification, commit or failure. */
  get changed(): Promise<void> {
    return this.tick;
  }

  /** Views of the window's bytes in [from, to): no copies. */
  private sliceWindow(from: number, to: number): Buffer[] {
    const out: Buffer[] = [];
    for (const c of this.window) {
      const end = c.start + c.bytes.length;
      if (end <= from) continue;
      if (c.start >= to) break;
      out.push(c.bytes.subarray(Math.max(0, from - c.start), Math.min(c.bytes.length, to - c.start)));
    }
    return out;
  }

  /** A stream of the staging file (or, once moved, the blob) from offset. */
  private async openAt(offset: number, length: number): Promise<AsyncIterable<Buffer>> {
    const { storage } = this.deps;
    for (let attempt = 0; ; attempt++) {
      try {
        return (await storage.reader(this.path, { offset, length })) as AsyncIterable<Buffer>;
      } catch (e) {
        if (!isPathNotFound(e) || this.state === 'failed') throw e;
        // The staging file was moved into blobs/ (verified bytes: the same ones), and `path` is
        // updated only once the commit's index writes are done: read the blob's own path.
        try {
          return (await storage.reader(blobDataPath(this.digest), { offset, length })) as AsyncIterable<Buffer>;
        } catch (e2) {
          if (attempt >= 20 || !isPathNotFound(e2)) throw e2;
          await new Promise((r) => setTimeout(r, 5));
        }
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
    await metadata.write((w) => w.deleteUpload(this.uuid));
  }

  /** How far a client may read right now. */
  readableLimit(): number {
    if (this.state === 'verified' || this.state === 'committed') return this.received;
    if (this.size === undefined) return this.received; // chunked to the client: its end is only sent after verification
    return Math.min(this.received, this.size - HOLDBACK_BYTES);
  }
}

export class FillError extends Error {}
