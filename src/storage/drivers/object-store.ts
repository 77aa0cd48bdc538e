/**
 * What the object-store drivers (s3, azure, swift) share: driver path -> object key, the
 * part-buffering Writable their writers are built on, and retries with backoff.
 *
 * An object store has no directories and no append: a "directory" is a key prefix, a file is
 * visible only once complete (one PUT, a completed multipart upload, a committed block list, a
 * Static Large Object manifest), and an append writes a new object made of the old one's parts
 * plus new ones.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { checkPath } from '../driver.js';

/** "/docker/x" under root "a/b" -> "a/b/docker/x"; under no root -> "docker/x"; "/" -> the root. */
export function keyFor(root: string, path: string): string {
  checkPath(path);
  if (path === '/') return root;
  return root === '' ? path.slice(1) : `${root}${path}`;
}

/** The prefix under which a key's children live ("" for the bucket's top). */
export const childPrefix = (key: string): string => (key === '' ? '' : `${key}/`);

/** A rootdirectory / prefix setting as a key prefix: no leading or trailing slashes. */
export function normaliseRoot(root: string | undefined): string {
  const trimmed = (root ?? '').replace(/^\/+|\/+$/g, '');
  if (trimmed !== '') checkPath(`/${trimmed}`);
  return trimmed;
}

/** Driver path of a key found in a listing (the inverse of keyFor). */
export function pathFor(root: string, key: string): string {
  const rel = root === '' ? key : key.slice(root.length + 1);
  return `/${rel.replace(/\/$/, '')}`;
}

export const randomId = (bytes = 8): string => randomBytes(bytes).toString('hex');

export const MiB = 1024 * 1024;

/**
 * A Writable that hands its bytes to `flush` in parts of at least `partSize` bytes (the last
 * part, taken with takeTail() at commit, may be smaller), numbered from 0 in stream order. Up to
 * `concurrency` parts upload at once while the next one fills, so memory stays at a few parts
 * whatever the file's size, and a slow round trip per part does not stall the stream.
 */
export class PartBuffer {
  readonly stream: Writable;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private parts = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: Error | undefined;
  /** Bytes accepted so far (handed to flush or still buffered). */
  accepted = 0;

  constructor(private readonly partSize: number, private readonly flush: (part: Buffer, index: number) => Promise<void>,
    private readonly concurrency = 2) {
    this.stream = new Writable({
      highWaterMark: Math.min(partSize, 8 * MiB),
      write: (chunk: Buffer, _enc, cb) => {
        if (this.failure) return cb(this.failure);
        this.chunks.push(chunk);
        this.buffered += chunk.length;
        this.accepted += chunk.length;
        if (this.buffered < this.partSize) return cb();
        this.start(this.takeTail());
        if (this.inFlight.size < this.concurrency) return cb();
        Promise.race(this.inFlight).then(() => cb(this.failure), () => cb(this.failure));
      },
    });
  }

  /** Hands one part to flush now; its number is taken here, so parts keep stream order. */
  private start(part: Buffer): void {
    const p = this.flush(part, this.parts++).catch((e: unknown) => {
      this.failure ??= e instanceof Error ? e : new Error(String(e));
    });
    const tracked = p.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  /** The number the next part will get. */
  get nextIndex(): number {
    return this.parts;
  }

  /** Seeds the buffer with bytes that come before anything written (an append to a small file). */
  prepend(data: Buffer): void {
    this.chunks.unshift(data);
    this.buffered += data.length;
  }

  /** Whatever is buffered and not yet flushed; empties the buffer. */
  takeTail(): Buffer {
    const out = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return out;
  }

  /** Ends the stream and waits for every part in flight: all bytes are flushed or buffered after it. */
  async end(): Promise<void> {
    const s = this.stream;
    await new Promise<void>((resolve, reject) => {
      if (s.writableFinished) return resolve();
      if (s.destroyed) return reject(s.errored ?? new Error('writer was destroyed'));
      s.once('error', reject);
      s.end(() => resolve());
    });
    await this.settled();
  }

  /** Waits for the parts in flight; throws the first flush failure. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
  }
}

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 100 };

/** Runs fn again after a failure that `retryable` accepts, with exponential backoff and jitter. */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, retryable: (e: unknown) => boolean, policy = DEFAULT_RETRY): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (attempt >= policy.attempts || !retryable(e)) throw e;
      const delay = policy.baseDelayMs * 2 ** (attempt - 1);
      await new Promise((r) => setTimeout(r, delay / 2 + Math.random() * delay / 2));
    }
  }
}

/** Runs fn over items with at most `limit` in flight. */
export async function forEachLimit<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  let failed: unknown;
  const worker = async () => {
    while (queue.length > 0 && failed === undefined) {
      const item = queue.shift()!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, queue.length)) }, worker));
  if (failed !== undefined) throw failed;
}

/** Resolves once a FileWriter is finished one way or the other; repeated calls share it. */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}
