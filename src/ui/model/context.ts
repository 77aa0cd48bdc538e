/** What the page's models read: the browse port, the registry (manifest and config bytes), and the running services. */
import type { Config } from '../../config/schema.js';
import type { BrowseIndex, UsageTotals } from '../../metadata/browse.js';
import type { Metrics } from '../../metrics.js';
import type { UpstreamRouter } from '../../proxy/routing.js';
import type { LocalRegistry } from '../../registry/registry.js';

/** The parts of lifecycle/ the cache view shows (Maintenance satisfies it). */
export interface CacheBudgetSource {
  evictor: { options: { maxBytes: number; lowWatermark: number } };
  pins: { recorded(): Promise<string[]>; matcher(): Promise<(repo: string, tags: readonly string[], digest: string) => boolean> };
}

/** The parts of notify/ the cache view shows (Notifier satisfies it). */
export interface NotifySource {
  endpoints: ReadonlyArray<{
    name: string; pending: number; delivered: number; failedDeliveries: number; failures: number; dropped: number;
    options: { url: string; disabled: boolean };
  }>;
}

export interface UiContext {
  config: Config;
  browse: BrowseIndex;
  registry: LocalRegistry;
  router?: UpstreamRouter;
  maintenance?: CacheBudgetSource;
  notifier?: NotifySource;
  metrics?: Metrics;
}

/** Upstream prefixes ("docker.io/") of the configured upstreams. */
export function upstreamOf(ctx: UiContext, repo: string): string | undefined {
  const first = repo.slice(0, repo.indexOf('/'));
  return ctx.router?.upstreams.find((u) => u.config.name === first)?.config.name;
}

const USAGE_KEEP_MS = 5_000;
const usageMemo = new WeakMap<UiContext, { at: number; totals: Promise<UsageTotals[]> }>();

/**
 * Bytes by origin and upstream, kept for a few seconds: summing every blob row costs tens of
 * milliseconds at tens of thousands of blobs, and the list page shows it on every view.
 */
export function usageTotals(ctx: UiContext, now = Date.now()): Promise<UsageTotals[]> {
  let m = usageMemo.get(ctx);
  if (!m || now - m.at > USAGE_KEEP_MS) {
    m = { at: now, totals: ctx.browse.usage() };
    usageMemo.set(ctx, m);
  }
  return m.totals;
}
