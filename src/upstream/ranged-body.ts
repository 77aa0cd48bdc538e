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
 * backpressure (its body is paused while the reader is full). The chunks after it are read as
 * they arrive and written at their place in a spool file (spool.ts, ranges.spool_dir), then read
 * back in order when their turn comes: memory holds only the bytes on their way to the file (plus
 * undici's per-body buffer, 1 MiB each), whatever the chunk size. At most `connections` chunks are
 * arriving at once; one that has arrived frees its connection for the next chunk even before its
 * turn, so the connections stay busy while the reader catches up. Bytes not yet written count
 * against the process's budget (held-budget.ts, ranges.max_memory): past it, a later chunk's body
 * is paused until writes catch up, so TCP keeps the rest upstream. The head is never paused for
 * the budget, so the stream always moves. Where no spool file can be opened (a read-only
 * directory), the rest of the blob comes in one request after the first chunk.
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
import type { Digest } from '../oci/digest.js';
import type { RegistryClient, UpstreamResponse } from './client.js';
import { UpstreamError } from './errors.js';
import type { HeldBudget } from './held-budget.js';
import { parseContentRange, RangedBody } from './ranged-stream.js';
import type { SpoolDir, SpoolFile } from './spool.js';

export interface RangedOptions {
  connections: number;
  chunkSize: number;
  minSize: number;
  /** The later chunks are asked for only if the first is still arriving after this long (0: at once). */
  startAfterMs?: number;
  /** The process's budget for later chunks' bytes not yet in the spool (ranges.max_memory); absent: none. */
  budget?: HeldBudget;
  /** Where later chunks wait for their turn (ranges.spool_dir); absent: no parallel chunks. */
  spoolDir?: SpoolDir;
}

/** Why the ranged mode gave up (a metric label). */
export type FallbackReason = 'ignored-range' | 'bad-status' | 'bad-range' | 'short-body' | 'long-body' | 'error';

export interface RangedHooks {
  /** The ranged mode gave up; the rest of the blob comes from one request (or the fill fails). */
  onFallback?: (reason: FallbackReason, detail: string) => void;
  /** The later chunks were planned: in parallel (`connections` at a time), or the rest in one request after the first. */
  onPlan?: (plan: { parallel: boolean; chunks: number; connections: number }) => void;
  /** No spool file could be opened: the rest of this blob comes in one request. */
  onNoSpool?: (reason: string) => void;
}

/** What the first request found. */
export interface RangedAnswer {
  /** The response to hand on: the ranged stream's, or the plain one's; 404 with no body too. */
  response: UpstreamResponse;
  /** The blob's size, when announced (Content-Range total or Content-Length). */
  size: number | undefined;
  /** True when the body is merged from several Range requests (hooks.onPlan says how many). */
  ranged: boolean;
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
  let spool: SpoolFile | undefined;
  // The body is read once the stream exists: until then an error on it must not go unheard.
  first.body.on('error', () => undefined);
  try {
    spool = await opts.spoolDir?.open();
  } catch (err) {
    hooks.onNoSpool?.((err as Error).message);
  }
  const body = new RangedBody(client, repo, digest, total, opts, first, controller, hooks, spool);
  return {
    response: { ...first, status: 200, body, headers: { ...first.headers, 'content-length': String(total), 'content-range': undefined } },
    size: total,
    ranged: true,
  };
}

function contentLength(res: UpstreamResponse): number | undefined {
  const length = res.headers['content-length'];
  return typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined;
}
