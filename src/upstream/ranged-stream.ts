/**
 * The merged stream of a ranged fetch (ranged-body.ts starts it with the first chunk's answer):
 * the head segment streams through with backpressure, later segments wait for their turn in a
 * spool file (spool.ts), their bytes in memory only until written (within the process's budget,
 * held-budget.ts), and anything wrong ends the ranged mode with one GET of the rest.
 * ranged-body.ts's header comment describes the protocol.
 */
import { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { RegistryClient, UpstreamResponse } from './client.js';
import type { HeldBudget } from './held-budget.js';
import type { FallbackReason, RangedHooks, RangedOptions } from './ranged-body.js';
import type { SpoolFile } from './spool.js';

/** Bytes read back from the spool per read. */
const SPOOL_READ = 1024 * 1024;

interface Segment {
  start: number;
  /** Exclusive. */
  end: number;
  received: number;
  /** Bytes of this segment handed to the reader. */
  taken: number;
  /** Bytes of this segment in the spool file, from its first byte on (their writes are done). */
  written: number;
  /** Bytes waiting for the write in flight to finish, then written together at `pendingAt`. */
  pending: Buffer[];
  pendingAt: number;
  /** A spool write of this segment is in flight (one at a time, so `written` only grows). */
  writing: boolean;
  body?: Readable;
  ended: boolean;
  /** Set while the body is paused for the budget: cancels the wake-up. */
  unwait?: () => void;
}

export class RangedBody extends Readable {
  /** Bytes pushed to the reader: where a fallback GET starts. */
  private delivered = 0;
  /** Index of the head segment (the one being delivered). */
  private head = 0;
  /** Next segment not asked for yet. */
  private nextToStart = 1;
  /** Segments asked for whose bodies have not ended yet (the first one from the start). */
  private inFlight = 1;
  private fallingBack = false;
  /** Set when the ranged mode is over (fallback or destroy): late events of its requests are ignored. */
  private stopped = false;
  /** The single body of a fallback GET. */
  private rest: Readable | undefined;
  private readonly restController = new AbortController();
  /** The first chunk, then what plan() adds. */
  private readonly segments: Segment[];
  /** Requests in flight at most: 1 until plan(true). */
  private connections = 1;
  /** plan(true): later chunks may arrive before their turn (into the spool). Otherwise each waits to be the head. */
  private parallel = false;
  private planned = false;
  private planTimer: NodeJS.Timeout | undefined;
  /** Set once the reader was full (backpressure) while the first chunk arrived. */
  private pushedBack = false;
  private readonly budget: HeldBudget | undefined;
  /** Set while a spool read is in flight (one at a time, in order). */
  private reading = false;
  /** The reader wants bytes (false from a push it refused until its next _read). */
  private wanted = true;

  constructor(
    private readonly client: RegistryClient,
    private readonly repo: string,
    private readonly digest: Digest,
    private readonly total: number,
    private readonly opts: RangedOptions,
    first: UpstreamResponse,
    private readonly controller: AbortController,
    private readonly hooks: RangedHooks,
    /** Where later chunks wait; without one the rest of the blob comes in one request after the first chunk. */
    private readonly spool: SpoolFile | undefined,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.budget = opts.budget;
    this.segments = [newSegment(0, opts.chunkSize)];
    this.attach(this.segments[0]!, first.body!);
    this.again = first.again;
    const wait = opts.startAfterMs ?? 0;
    if (!spool) this.plan(false);
    else if (wait <= 0) this.plan(true);
    // Parallel only if the network is what holds the first chunk back: a reader that pushed back
    // (the disk, or clients, slower than this one connection) would gain nothing from more.
    else this.planTimer = setTimeout(() => this.plan(!this.pushedBack), wait);
  }

  /**
   * The rest of the blob after the first chunk: chunk_size segments `connections` at a time (or,
   * under min_size, the rest beside the first chunk), or, when the first chunk came whole before
   * start_after or the reader could not keep up with it (a near upstream, a slow disk), the rest in
   * one request after it.
   */
  private plan(parallel: boolean): void {
    if (this.planned) return;
    this.planned = true;
    clearTimeout(this.planTimer);
    const { chunkSize, minSize } = this.opts;
    const add = (start: number, end: number) => this.segments.push(newSegment(start, end));
    if (parallel && this.total >= minSize) for (let s = chunkSize; s < this.total; s += chunkSize) add(s, Math.min(s + chunkSize, this.total));
    else add(chunkSize, this.total);
    this.connections = parallel ? Math.max(1, this.opts.connections) : 1;
    this.parallel = parallel;
    this.hooks.onPlan?.({ parallel, chunks: this.segments.length, connections: this.connections });
    this.startMore();
  }

  private again: UpstreamResponse['again'];

  override _read(): void {
    this.wanted = true;
    if (this.rest) this.rest.resume();
    else this.flushHead();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.stopRanged();
    this.spool?.close();
    this.restController.abort();
    this.rest?.destroy();
    cb(err);
  }

  /**
   * Asks for the next segments while fewer than `connections` are arriving. A segment that has
   * arrived frees its connection even before its turn: it waits in the spool, so the connections
   * stay busy however far ahead of the reader they are.
   */
  private startMore(): void {
    while (!this.stopped && this.nextToStart < this.segments.length && this.inFlight < this.connections && (this.parallel || this.nextToStart <= this.head)) {
      this.inFlight++;
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
      // The head streams straight through once the reader has everything before these bytes;
      // until then (a later segment, or a head still reading its spool) they go to the spool.
      if (this.segments[this.head] === seg && seg.taken === seg.received - chunk.length) this.deliver(seg, chunk, body);
      else this.hold(seg, chunk, body);
    });
    body.on('end', () => {
      if (this.stopped) return;
      if (seg.received !== length) {
        this.fail('short-body', `bytes=${seg.start}-${seg.end - 1} ended after ${seg.received} bytes`);
        return;
      }
      seg.ended = true;
      this.inFlight--;
      this.startMore();
      if (this.segments[this.head] === seg) this.flushHead();
    });
    body.on('error', (err: Error) => {
      if (!this.stopped) this.fail('error', `bytes=${seg.start}-${seg.end - 1}: ${err.message}`);
    });
    body.on('close', () => {
      if (!this.stopped && !seg.ended) this.fail('short-body', `bytes=${seg.start}-${seg.end - 1} closed after ${seg.received} bytes`);
    });
  }

  /**
   * Bytes that are not the reader's turn yet, written to the spool at their place; the head's
   * reading follows the writes. Until written they count against the budget, and the body waits
   * while the budget is full.
   */
  private hold(seg: Segment, chunk: Buffer, body: Readable): void {
    this.budget?.take(chunk.length);
    seg.pending.push(chunk);
    this.writePending(seg);
    const budget = this.budget;
    if (!budget || !budget.full || seg.unwait) return;
    body.pause();
    seg.unwait = budget.whenRoom(() => {
      seg.unwait = undefined;
      // Still not the head: resume; the head is resumed by _read when the reader wants more.
      if (!this.stopped && this.segments[this.head] !== seg) body.resume();
    });
  }

  /**
   * Writes what the segment has waiting, in one call, unless a write is in flight: each write
   * takes everything that arrived during the one before (one call per 64 KiB read cost more than
   * the copy itself).
   */
  private writePending(seg: Segment): void {
    if (seg.writing || seg.pending.length === 0 || this.stopped) return;
    const parts = seg.pending;
    const at = seg.pendingAt;
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    seg.pending = [];
    seg.pendingAt = at + bytes;
    seg.writing = true;
    this.spool!.write(parts, seg.start + at).then(() => {
      seg.writing = false;
      this.budget?.give(bytes);
      if (this.stopped) return;
      seg.written = at + bytes;
      this.writePending(seg);
      if (this.segments[this.head] === seg) this.flushHead();
    }, (err: Error) => {
      seg.writing = false;
      this.budget?.give(bytes);
      if (!this.stopped) this.fail('error', `the spool file: ${err.message}`);
    });
  }

  /** Bytes to the reader; the source waits while the reader is full. */
  private deliver(seg: Segment | undefined, chunk: Buffer, source: Readable | undefined): void {
    if (seg) seg.taken += chunk.length;
    this.delivered += chunk.length;
    if (!this.push(chunk)) {
      this.wanted = false;
      source?.pause();
      this.pushedBack = true;
    }
  }

  /**
   * Hands the head's spooled bytes to the reader while it wants them, then lets the head's body
   * flow once the reader has caught up with it, or moves on to the next segment when the head is
   * complete. Called again by _read when the reader wants more, and when a spool write is done.
   */
  private flushHead(): void {
    // A spool write that finished while the reader is full waits for its _read.
    if (this.reading || this.stopped || !this.wanted) return;
    for (;;) {
      const seg = this.segments[this.head];
      if (!seg) return;
      if (seg.taken < seg.written) {
        this.readSpooled(seg);
        return;
      }
      if (seg.taken < seg.received) return; // the next bytes are still being written: that write calls back
      if (!seg.ended) {
        seg.body?.resume();
        return;
      }
      if (!this.nextHead()) return;
    }
  }

  private readSpooled(seg: Segment): void {
    const length = Math.min(SPOOL_READ, seg.written - seg.taken);
    this.reading = true;
    this.spool!.read(seg.start + seg.taken, length).then((bytes) => {
      this.reading = false;
      if (this.stopped || this.destroyed) return;
      seg.taken += length;
      this.delivered += length;
      if (this.push(bytes)) this.flushHead();
      else this.wanted = false;
    }, (err: Error) => {
      this.reading = false;
      if (!this.stopped) this.fail('error', `the spool file: ${err.message}`);
    });
  }

  /** The head segment is complete: the next one becomes the head (false at the end of the blob). */
  private nextHead(): boolean {
    // The first chunk came whole before start_after: a near upstream.
    if (!this.planned) this.plan(false);
    this.segments[this.head]!.body = undefined;
    this.head++;
    if (this.head >= this.segments.length) {
      this.spool?.close();
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
    clearTimeout(this.planTimer);
    this.planned = true;
    this.controller.abort();
    this.spool?.close();
    for (const seg of this.segments) {
      for (const p of seg.pending) this.budget?.give(p.length);
      seg.pending = [];
      seg.unwait?.();
      seg.unwait = undefined;
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
    body.on('data', (chunk: Buffer) => this.deliver(undefined, chunk, body));
    body.on('end', () => this.push(null));
    body.on('error', (err: Error) => this.destroy(err));
    body.on('close', () => { if (!body.readableEnded) this.destroy(new Error(`the fallback GET from byte ${from} closed before its end`)); });
  }
}

function newSegment(start: number, end: number): Segment {
  return { start, end, received: 0, taken: 0, written: 0, pending: [], pendingAt: 0, writing: false, ended: false };
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
