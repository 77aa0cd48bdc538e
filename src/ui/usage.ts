/**
 * Pull counts and traffic figures, counted from the request log (every manifest and blob GET
 * passes it with its repository, digest, cache outcome and bytes), kept in memory and added to
 * the shared tables every few seconds in one transaction: never a write per request, and with
 * several replicas each adds its own counts, so the tables hold the sum.
 *
 * A pull is a manifest GET answered 200, counted on the repository the content is stored under
 * (the cache repository for cached content, whichever route the client used) and the digest
 * served; a tag's pulls are those of the manifest it points at.
 */
import type { Logger } from 'pino';
import type { BrowseIndex, TrafficPoint, UsageBatch } from '../metadata/browse.js';
import type { ServedRequest } from '../http/plugins/request-log.js';

const MINUTE = 60_000;
/** How long minute figures are kept: a week of history plus a day. */
export const TRAFFIC_KEPT_MS = 8 * 24 * 3_600_000;
const PRUNE_EVERY_MS = 3_600_000;
const HIT_OUTCOMES = new Set(['hit', 'revalidated', 'stale', 'joined']);

export interface UsageOptions {
  flushMs: number;
  now?: () => number;
}

export class UsageRecorder {
  private pulls = new Map<string, { repo: string; digest: string; count: number; last: number }>();
  private traffic = new Map<number, TrafficPoint>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private lastPrune = 0;
  private readonly now: () => number;

  constructor(private readonly browse: BrowseIndex, private readonly log: Logger, private readonly options: UsageOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The request log's listener. */
  readonly record = (s: ServedRequest): void => {
    if (s.method !== 'GET' || (s.kind !== 'manifest' && s.kind !== 'blob') || s.repo === undefined) return;
    if (s.status === undefined || s.status >= 300) return;
    const now = this.now();
    const minute = Math.floor(now / MINUTE) * MINUTE;
    let t = this.traffic.get(minute);
    if (!t) this.traffic.set(minute, t = { at: minute, requests: 0, hits: 0, misses: 0, localBytes: 0, cacheBytes: 0, fetchedBytes: 0 });
    t.requests++;
    if (s.cache === 'local' || s.cache === undefined) t.localBytes += s.bytes;
    else if (HIT_OUTCOMES.has(s.cache)) { t.hits++; t.cacheBytes += s.bytes; }
    else if (s.cache === 'miss') t.misses++;
    t.fetchedBytes += s.upstreamBytes ?? 0;
    if (s.kind === 'manifest' && s.status === 200 && s.digest !== undefined) {
      const repo = s.cache === 'local' || s.cache === undefined ? s.repo : s.storedRepo ?? s.repo;
      const key = `${repo}@${s.digest}`;
      const p = this.pulls.get(key);
      if (p) { p.count++; p.last = now; } else this.pulls.set(key, { repo, digest: s.digest, count: 1, last: now });
    }
  };

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.options.flushMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Adds what was counted since the last flush to the shared tables (one flush at a time). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (this.pulls.size === 0 && this.traffic.size === 0) return;
    const batch: UsageBatch = { pulls: [...this.pulls.values()], traffic: [...this.traffic.values()] };
    this.pulls = new Map();
    this.traffic = new Map();
    try {
      await this.browse.addUsage(batch);
      const now = this.now();
      if (now - this.lastPrune > PRUNE_EVERY_MS) {
        this.lastPrune = now;
        await this.browse.pruneTraffic(now - TRAFFIC_KEPT_MS);
      }
    } catch (err) {
      // Figures for the page only: losing one batch beats growing without bound while the index is unwell.
      this.log.warn({ err, pulls: batch.pulls.length, minutes: batch.traffic.length }, 'usage figures not recorded');
    }
  }
}
