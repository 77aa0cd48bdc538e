/**
 * The cache at a glance: hit ratio and bytes served from the cache against bytes fetched from
 * upstreams over time, each upstream's state as the pulls found it, disk use against the budget,
 * pins, the largest and most pulled images, and the notification endpoints.
 */
import { statfs } from 'node:fs/promises';
import type { TrafficPoint } from '../../metadata/browse.js';
import type { Viewer } from '../access.js';
import { usageTotals, type UiContext } from './context.js';
import type { ImageSize, ImageSizes } from './images.js';

const HOUR = 3_600_000;
const LIST = 10;

export interface TrafficTotals { requests: number; hits: number; misses: number; hitRatio: number | undefined; localBytes: number; cacheBytes: number; fetchedBytes: number }

export interface CacheView {
  hours: number;
  bucketMs: number;
  totals: TrafficTotals;
  /** One point per bucket over the window, zeros where nothing was served. */
  series: TrafficPoint[];
  upstreams: Array<{
    name: string; url: string; isDefault: boolean; state: string;
    averageLatencyMs?: number; lastLatencyMs?: number; lastSuccessAt?: number; lastError?: { message: string; at: number };
  }>;
  disk: {
    cachedBytes: number; pushedBytes: number; maxBytes: number; lowWatermark: number;
    filesystem?: { path: string; totalBytes: number; freeBytes: number };
    /** Since this process started. */
    evictions: number; evictedBytes: number;
  };
  pins: { patterns: string[]; images: ImageSize[] };
  largest: ImageSize[];
  mostPulled: Array<{ repo: string; digest: string; tags: string[]; pulls: number; lastPulled: number }>;
  notifications: Array<{ name: string; url: string; disabled: boolean; pending: number; delivered: number; failed: number; failingNow: boolean; dropped: number }>;
}

export function totalsOf(points: readonly TrafficPoint[]): TrafficTotals {
  const t = { requests: 0, hits: 0, misses: 0, localBytes: 0, cacheBytes: 0, fetchedBytes: 0 };
  for (const p of points) {
    t.requests += p.requests; t.hits += p.hits; t.misses += p.misses;
    t.localBytes += p.localBytes; t.cacheBytes += p.cacheBytes; t.fetchedBytes += p.fetchedBytes;
  }
  return { ...t, hitRatio: t.hits + t.misses > 0 ? t.hits / (t.hits + t.misses) : undefined };
}

async function counterValue(c: { get(): Promise<{ values: Array<{ value: number }> }> } | undefined): Promise<number> {
  return c ? (await c.get()).values.reduce((n, v) => n + v.value, 0) : 0;
}

async function filesystemOf(ctx: UiContext): Promise<CacheView['disk']['filesystem']> {
  const backend = ctx.config.storage.backend;
  if (backend.driver !== 'filesystem') return undefined;
  try {
    const s = await statfs(backend.rootdirectory);
    return { path: backend.rootdirectory, totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  } catch {
    return undefined;
  }
}

export async function cacheView(ctx: UiContext, viewer: Viewer, sizes: ImageSizes, hours: number, now = Date.now()): Promise<CacheView> {
  const bucketMs = hours <= 24 ? 10 * 60_000 : HOUR;
  const start = Math.floor((now - hours * HOUR) / bucketMs) * bucketMs + bucketMs;
  const recorded = new Map((await ctx.browse.traffic(start, bucketMs)).map((p) => [p.at, p]));
  const series: TrafficPoint[] = [];
  for (let at = start; at <= now; at += bucketMs) {
    series.push(recorded.get(at) ?? { at, requests: 0, hits: 0, misses: 0, localBytes: 0, cacheBytes: 0, fetchedBytes: 0 });
  }
  const usage = await usageTotals(ctx);
  const sum = (origin: string) => usage.filter((u) => u.origin === origin).reduce((n, u) => n + u.bytes, 0);
  const visible = (await sizes.all()).filter((i) => viewer.mayPull(i.repo));
  const pinned = await ctx.maintenance?.pins.matcher();
  const mostPulled = [];
  for (const p of await ctx.browse.mostPulled(LIST * 5)) {
    if (!viewer.mayPull(p.repo)) continue;
    mostPulled.push({ ...p, tags: await ctx.browse.tagsOf(p.repo, p.digest) });
    if (mostPulled.length === LIST) break;
  }
  const budget = ctx.maintenance?.evictor.options;
  const filesystem = await filesystemOf(ctx);
  return {
    hours, bucketMs, totals: totalsOf(series), series,
    upstreams: (ctx.router?.upstreams ?? []).map((u) => ({
      name: u.config.name, url: u.config.url, isDefault: ctx.config.defaultUpstream === u.config.name,
      state: u.client.endpoints.at(-1)!.breaker.state(), ...u.client.endpoints.at(-1)!.stats,
    })),
    disk: {
      cachedBytes: sum('cached'), pushedBytes: sum('local'), maxBytes: budget?.maxBytes ?? ctx.config.cache?.max_size ?? 0,
      lowWatermark: budget?.lowWatermark ?? ctx.config.cache?.low_watermark ?? 0.9,
      ...(filesystem ? { filesystem } : {}),
      evictions: await counterValue(ctx.metrics?.evictions), evictedBytes: await counterValue(ctx.metrics?.evictedBytes),
    },
    pins: {
      patterns: [...(ctx.config.cache?.pin ?? []), ...((await ctx.maintenance?.pins.recorded()) ?? [])],
      images: pinned ? visible.filter((i) => pinned(i.repo, i.tags, i.digest)) : [],
    },
    largest: [...visible].sort((a, b) => b.bytes - a.bytes).slice(0, LIST),
    mostPulled,
    notifications: (ctx.notifier?.endpoints ?? []).map((e) => ({
      name: e.name, url: e.options.url, disabled: e.options.disabled, pending: e.pending, delivered: e.delivered,
      failed: e.failedDeliveries, failingNow: e.failures > 0, dropped: e.dropped,
    })),
  };
}
