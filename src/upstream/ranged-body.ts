/**
 * One upstream blob as ONE ordered byte stream, fetched over several connections at once with
 * HTTP Range requests (issue 17: across a WAN each connection is bounded, so one big layer on one
 * connection bounds a cold pull). The caller (proxy/blob-misses.ts) hands the stream to a BlobFill
 * as if it were a plain GET's body: hashing, verification and the commit stay there.
 *
 * The first request asks for the first chunk only (`Range: bytes=0-<chunk-1>`):
 *  - 200: the upstream ignores Range; its body is the whole blob, read as a plain GET.
 *  - 416: the blob is empty (there is no byte 0); it is asked for again with a plain GET.
 *  - 206 for the whole blob (it fits in a chunk): read as a plain GET.
 *  - 206 for the first chunk: Content-Range gives the size. A blob under min_size gets its rest in
 *    one request beside the first (two connections); a bigger one is split into chunks, at most
 *    `connections` requests in flight.
 *
 * Order and memory: the head chunk (the one whose bytes come next) streams straight through, with
 * backpressure (its body is paused while the reader is full). The chunks after it, at most
 * connections - 1, are read as they arrive and kept in memory until their turn: a fill holds at
 * most (connections - 1) x chunk_size of them, or min_size - chunk_size for a blob under min_size
 * (plus undici's per-body buffer, 1 MiB each). A chunk is asked for only when it is within
 * `connections` of the head, so nothing further ahead is fetched. Held bytes also count against
 * the process's budget (held-budget.ts): past it, a later chunk's body is paused until chunks ahead
 * have streamed, so TCP keeps the rest upstream. The head is never paused for the budget, so the
 * stream always moves.
 *
 * Every ranged answer must be 206 with exactly the Content-Range asked (same total) and exactly
 * that many bytes. Anything else (a 200, another range, a short or long body, an error) ends the
 * ranged mode: every request in flight is aborted, every chunk held is dropped, and the rest is
 * fetched with one GET from the first byte not yet delivered (`Range: bytes=N-`, or a plain GET
 * when nothing was delivered). If that fails too, the stream errors (the fill fails; the next
 * request retries). No byte is ever delivered twice or out of place, and the digest check at the
 * end of the fill remains the final guard.
 *
 * Requests after the first go to the URL the first one was redirected to (a CDN), skipping the
 * registry round trip; when that answers anything but the expected 206 (an expired signed URL),
 * the chunk is asked for through the registry again.
 */
import { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { RegistryClient, UpstreamResponse } from './client.js';
import { UpstreamError } from './errors.js';
import type { HeldBudget } from './held-budget.js';

export interface RangedOptions {
  connections: number;
  chunkSize: number;
  minSize: number;
  /** The process's budget for chunks held before their turn (ranges.max_memory); absent: none. */
  budget?: HeldBudget;
}

/** Why the ranged mode gave up (a metric label). */
export type FallbackReason = 'ignored-range' | 'bad-status' | 'bad-range' | 'short-body' | 'long-body' | 'error';

export interface RangedHooks {
  /** The ranged mode gave up; the rest of the blob comes from one request (or the fill fails). */
  onFallback?: (reason: FallbackReason, detail: string) => void;
}

/** What the first request found. */
export interface RangedAnswer {
  /** The response to hand on: the ranged stream's, or the plain one's; 404 with no body too. */
  response: UpstreamResponse;
  /** The blob's size, when announced (Content-Range total or Content-Length). */
  size: number | undefined;
  /** True when the body is merged from several Range requests. */
  ranged: boolean;
  chunks?: number;
}

/** GETs digest: a ranged stream when the upstream honours Range and the blob is big enough, else the plain answer. */
export async function fetchBlob(client: RegistryClient, repo: string, digest: Digest, opts: RangedOptions, hooks: RangedHooks = {}): Promise<RangedAnswer> {
  const chunk = opts.chunkSize;
  const controller = new AbortController();
  let first: UpstreamResponse;
  try {
    first = await client.blob(repo, digest, { range: `bytes=0-${chunk - 1}`, signal: controller.signal });
  } catch (err) {
    // 416: no byte 0 to give, an empty blob. Asked for whole, it is an empty 200.
    if (!(err instanceof UpstreamError && err.options.status === 416)) throw err;
    const plain = await client.blob(repo, digest);
    return { response: plain, size: plain.status === 200 ? contentLength(plain) : undefined, ranged: false };
  }
  if (first.status === 404 || !first.body) return { response: first, size: undefined, ranged: false };
  if (first.status === 200) {
    const size = contentLength(first);
    // A blob that fits in a chunk would have come whole anyway: only a bigger one lost something.
    if (size === undefined || size > chunk) hooks.onFallback?.('ignored-range', 'the upstream answered 200 to a Range request');
    return { response: first, size, ranged: false };
  }
  const range = parseContentRange(first.headers['content-range']);
  if (!range || range.start !== 0 || range.end !== Math.min(chunk, range.total) - 1) {
    // Nothing delivered yet: a plain GET instead, as if ranges were off.
    first.body.destroy();
    hooks.onFallback?.('bad-range', `first answer's Content-Range ${String(first.headers['content-range'])}`);
    const plain = await client.blob(repo, digest);
    return { response: plain, size: plain.status === 200 ? contentLength(plain) : undefined, ranged: false };
  }
  const total = range.total;
  if (total <= chunk) return { response: first, size: total, ranged: false };
  const bounds: [number, number][] = [[0, chunk]];
  if (total < opts.minSize) bounds.push([chunk, total]);
  else for (let s = chunk; s < total; s += chunk) bounds.push([s, Math.min(s + chunk, total)]);
  const body = new RangedBody(client, repo, digest, total, bounds, Math.max(1, opts.connections), first, controller, hooks, opts.budget);
  return {
    response: { ...first, status: 200, body, headers: { ...first.headers, 'content-length': String(total), 'content-range': undefined } },
    size: total,
    ranged: true,
    chunks: bounds.length,
  };
}

interface Segment {
  start: number;
  /** Exclusive. */
  end: number;
  received: number;
  /** Bytes waiting for their turn (this segment is not the head yet). */
  parts: Buffer[];
  body?: Readable;
  ended: boolean;
  /** Set while the body is paused for the budget: cancels the wake-up. */
  unwait?: () => void;
}

class RangedBody extends Readable {
  /** Bytes pushed to the reader: where a fallback GET starts. */
  private delivered = 0;
  /** Index of the head segment (the one being delivered). */
  private head = 0;
  /** Next segment not asked for yet. */
  private nextToStart = 1;
  private fallingBack = false;
  /** Set when the ranged mode is over (fallback or destroy): late events of its requests are ignored. */
  private stopped = false;
  /** The single body of a fallback GET. */
  private rest: Readable | undefined;
  private readonly restController = new AbortController();
  private readonly segments: Segment[];

  constructor(
    private readonly client: RegistryClient,
    private readonly repo: string,
    private readonly digest: Digest,
    private readonly total: number,
    bounds: [number, number][],
    private readonly connections: number,
    first: UpstreamResponse,
    private readonly controller: AbortController,
    private readonly hooks: RangedHooks,
    private readonly budget: HeldBudget | undefined,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.segments = bounds.map(([start, end]) => ({ start, end, received: 0, parts: [], ended: false }));
    this.attach(this.segments[0]!, first.body!);
    this.again = first.again;
    this.startMore();
  }

  private again: UpstreamResponse['again'];

  override _read(): void {
    if (this.rest) this.rest.resume();
    else this.flushHead();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.stopRanged();
    this.restController.abort();
    this.rest?.destroy();
    cb(err);
  }

  /** Asks for the segments within `connections` of the head. */
  private startMore(): void {
    while (!this.stopped && this.nextToStart < this.segments.length && this.nextToStart < this.head + this.connections) {
      const seg = this.segments[this.nextToStart++]!;
      void this.request(seg);
    }
  }

  private async request(seg: Segment): Promise<void> {
    const want = `bytes=${seg.start}-${seg.end - 1}`;
    const signal = this.controller.signal;
    let res: UpstreamResponse | undefined;
    try {
      if (this.again) {
        res = await this.again({ range: want }, signal).catch(() => undefined);
        if (res && !this.matches(res, seg)) {
          res.body?.destroy();
          res = undefined;
          // The resolved URL no longer serves it (expired?): through the registry from now on.
          this.again = undefined;
        }
      }
      res ??= await this.client.blob(this.repo, this.digest, { range: want, signal });
    } catch (err) {
      if (!this.stopped) this.fail('error', `${want}: ${(err as Error).message}`);
      return;
    }
    if (this.stopped) { res.body?.destroy(); return; }
    if (res.status !== 206 || !res.body) {
      res.body?.destroy();
      this.fail(res.status === 200 ? 'ignored-range' : 'bad-status', `${want} answered ${res.status}`);
      return;
    }
    if (!this.matches(res, seg)) {
      res.body.destroy();
      this.fail('bad-range', `${want} answered Content-Range ${String(res.headers['content-range'])}`);
      return;
    }
    this.attach(seg, res.body);
  }

  private matches(res: UpstreamResponse, seg: Segment): boolean {
    if (res.status !== 206) return false;
    const r = parseContentRange(res.headers['content-range']);
    return !!r && r.start === seg.start && r.end === seg.end - 1 && r.total === this.total;
  }

  private attach(seg: Segment, body: Readable): void {
    seg.body = body;
    const length = seg.end - seg.start;
    body.on('data', (chunk: Buffer) => {
      if (this.stopped) return;
      seg.received += chunk.length;
      if (seg.received > length) {
        this.fail('long-body', `bytes=${seg.start}-${seg.end - 1} sent more than asked`);
        return;
      }
      if (this.segments[this.head] !== seg) this.hold(seg, chunk, body);
      else if (seg.parts.length === 0) this.deliver(chunk, body);
      else {
        // The head's held bytes are still going out (as fast as the reader takes them): after them.
        seg.parts.push(chunk);
        this.budget?.take(chunk.length);
        body.pause();
      }
    });
    body.on('end', () => {
      if (this.stopped) return;
      if (seg.received !== length) {
        this.fail('short-body', `bytes=${seg.start}-${seg.end - 1} ended after ${seg.received} bytes`);
        return;
      }
      seg.ended = true;
      if (this.segments[this.head] === seg && seg.parts.length === 0 && this.nextHead()) this.flushHead();
    });
    body.on('error', (err: Error) => {
      if (!this.stopped) this.fail('error', `bytes=${seg.start}-${seg.end - 1}: ${err.message}`);
    });
    body.on('close', () => {
      if (!this.stopped && !seg.ended) this.fail('short-body', `bytes=${seg.start}-${seg.end - 1} closed after ${seg.received} bytes`);
    });
  }

  /** A later chunk's bytes, kept until its turn; its body waits while the budget is full. */
  private hold(seg: Segment, chunk: Buffer, body: Readable): void {
    seg.parts.push(chunk);
    const budget = this.budget;
    if (!budget) return;
    budget.take(chunk.length);
    if (!budget.full || seg.unwait) return;
    body.pause();
    seg.unwait = budget.whenRoom(() => {
      seg.unwait = undefined;
      // Still not the head: resume; the head is resumed by _read when the reader wants more.
      if (!this.stopped && this.segments[this.head] !== seg) body.resume();
    });
  }

  /** Hands a segment's held bytes back to the budget (delivered or dropped). */
  private release(seg: Segment): void {
    seg.unwait?.();
    seg.unwait = undefined;
    if (!this.budget || seg.parts.length === 0) return;
    let bytes = 0;
    for (const p of seg.parts) bytes += p.length;
    this.budget.give(bytes);
  }

  private deliver(chunk: Buffer, source: Readable | undefined): void {
    this.delivered += chunk.length;
    if (!this.push(chunk)) source?.pause();
  }

  /**
   * Hands the head's held bytes to the reader while it wants them (each gives its bytes back to
   * the budget as it goes out), then lets the head's body flow, or moves on to the next segment
   * when the head is complete. Called again by _read when the reader wants more.
   */
  private flushHead(): void {
    for (;;) {
      const seg = this.segments[this.head];
      if (!seg) return;
      while (seg.parts.length > 0) {
        const part = seg.parts.shift()!;
        this.budget?.give(part.length);
        this.delivered += part.length;
        if (!this.push(part)) return;
      }
      if (!seg.ended) {
        seg.body?.resume();
        return;
      }
      if (!this.nextHead()) return;
    }
  }

  /** The head segment is complete: the next one becomes the head (false at the end of the blob). */
  private nextHead(): boolean {
    this.segments[this.head]!.body = undefined;
    this.head++;
    if (this.head >= this.segments.length) {
      this.push(null);
      return false;
    }
    this.startMore();
    const seg = this.segments[this.head]!;
    // The head is never held back for the budget (see hold()): its wait is over.
    seg.unwait?.();
    seg.unwait = undefined;
    return true;
  }

  /** Stops every ranged request and drops what they hold. */
  private stopRanged(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.controller.abort();
    for (const seg of this.segments) {
      this.release(seg);
      seg.parts = [];
      seg.body?.destroy();
      seg.body = undefined;
    }
  }

  /** Ranged mode over: the rest in one request from the first byte not delivered, or the stream fails. */
  private fail(reason: FallbackReason, detail: string): void {
    if (this.fallingBack || this.destroyed) return;
    this.fallingBack = true;
    this.stopRanged();
    this.hooks.onFallback?.(reason, detail);
    void this.fetchRest().catch((err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))));
  }

  private async fetchRest(): Promise<void> {
    const from = this.delivered;
    const signal = this.restController.signal;
    const res = await this.client.blob(this.repo, this.digest, from > 0 ? { range: `bytes=${from}-`, signal } : { signal });
    if (this.destroyed) { res.body?.destroy(); return; }
    if (!res.body) throw new Error(`the fallback GET from byte ${from} answered ${res.status}`);
    const r = parseContentRange(res.headers['content-range']);
    const ok = from === 0
      ? res.status === 200 || (res.status === 206 && !!r && r.start === 0 && r.end === this.total - 1)
      : res.status === 206 && !!r && r.start === from && r.end === this.total - 1 && r.total === this.total;
    if (!ok) {
      res.body.destroy();
      throw new Error(`the fallback GET from byte ${from} answered ${res.status} ${String(res.headers['content-range'] ?? '')}`);
    }
    const body = res.body;
    this.rest = body;
    body.on('data', (chunk: Buffer) => this.deliver(chunk, body));
    body.on('end', () => this.push(null));
    body.on('error', (err: Error) => this.destroy(err));
    body.on('close', () => { if (!body.readableEnded) this.destroy(new Error(`the fallback GET from byte ${from} closed before its end`)); });
  }
}

function contentLength(res: UpstreamResponse): number | undefined {
  const length = res.headers['content-length'];
  return typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined;
}

/** `bytes <start>-<end>/<total>`, numbers only (a `*` total is not enough to plan chunks). */
export function parseContentRange(header: string | string[] | undefined): { start: number; end: number; total: number } | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim());
  if (!m) return undefined;
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (end < start || end >= total) return undefined;
  return { start, end, total };
}
