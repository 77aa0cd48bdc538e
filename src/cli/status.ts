/** stowage status --config FILE [--top N] [--json]: usage per upstream, budget, largest and least recently used images. */
import { openServices, parse, readConfig, toolLogger, UsageError } from './common.js';
import { formatBytes, table } from './progress.js';

export const HELP = `usage: stowage status --config FILE [--top N] [--json]

Storage usage by origin (pushed, cached per upstream), the cache budget, and the largest and the
least recently used cached images (the next to be evicted). Works beside a running server.`;

const when = (t: number): string => (t > 0 ? new Date(t).toISOString().replace(/\.\d+Z$/, 'Z') : 'never');

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { top: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, false);
  if (values.help) { process.stdout.write(`${HELP}\n`); return 0; }
  const top = values.top === undefined ? 10 : Number(values.top);
  if (!Number.isInteger(top) || top < 1) throw new UsageError('--top: a whole number from 1');
  const config = readConfig(values.config);
  const log = toolLogger(config);
  const services = await openServices(config, log);
  try {
    const { metadata, maintenance } = services;
    const usage = (await metadata.usage()).map((u) => ({ origin: u.origin === 'local' ? 'pushed' : 'cached', upstream: u.upstream, blobs: u.blobs, bytes: u.bytes }));
    const images = await maintenance.evictor.images();
    const budget = maintenance.evictor.options;
    const cached = await metadata.cachedBytes();
    const largest = [...images].sort((a, b) => b.bytes - a.bytes).slice(0, top);
    const oldest = [...images].sort((a, b) => a.lastAccess - b.lastAccess).slice(0, top);
    const status = {
      usage, cachedBytes: cached, budget: { maxBytes: budget.maxBytes, lowWatermark: budget.lowWatermark, minAgeMs: budget.minAgeMs, pullHoldMs: budget.holdMs },
      pins: [...(config.cache?.pin ?? []), ...(await maintenance.pins.recorded())], cachedImages: images.length, largest, leastRecentlyUsed: oldest,
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(status)}\n`);
      return 0;
    }
    process.stdout.write(`${table(['origin', 'upstream', 'blobs', 'bytes'], usage.map((u) => [u.origin, u.upstream ?? '-', u.blobs, formatBytes(u.bytes)]))}\n\n`);
    process.stdout.write(budget.maxBytes > 0
      ? `cache: ${formatBytes(cached)} of ${formatBytes(budget.maxBytes)} (${((cached * 100) / budget.maxBytes).toFixed(1)}%), evicts down to ${Math.round(budget.lowWatermark * 100)}%; ${images.length} cached images\n`
      : `cache: ${formatBytes(cached)}, no budget (cache.max_size); ${images.length} cached images\n`);
    const rows = (list: typeof images) => list.map((i) => [`${i.repo}${i.tags.length ? `:${i.tags.join(',')}` : `@${i.digest.slice(0, 19)}`}`, formatBytes(i.bytes), when(i.lastAccess), i.pinned ? 'pinned' : '']);
    process.stdout.write(`\nlargest images\n${table(['image', 'bytes', 'last used', ''], rows(largest))}\n`);
    process.stdout.write(`\nleast recently used (evicted first)\n${table(['image', 'bytes', 'last used', ''], rows(oldest))}\n`);
    return 0;
  } finally {
    await services.close();
  }
}
