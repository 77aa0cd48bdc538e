/** stowage prefetch --config FILE IMAGE... | --file LIST [--platform LIST] [-j N] [--json] */
import { pullImage, parsePlatforms, type Platform } from '../bundle/pull.js';
import { ImageSelector } from '../bundle/select.js';
import { openServices, parse, readConfig, toolLogger, UsageError } from './common.js';
import { readList } from './export.js';
import { verifySelection } from './verify.js';
import { createReporter, formatBytes, formatSeconds, table } from './progress.js';

export const HELP = `usage: stowage prefetch --config FILE IMAGE... [--file LIST] [options]

Pulls images through the cache, so they are there before the network is cut: every platform of an
index (the index is always stored whole), every layer. What is cached already is not fetched again.

  --file LIST          more names, one a line (# comments)
  --platform LIST      only these platforms' manifests and layers (linux/amd64,linux/arm64)
  -j N                 images in parallel (default 2)
  --pin                never evict these images (cache budget); recorded in the index, like cache.pin
  --verify             each image must satisfy the signature policy (policy:), warn rules counting as
                       enforce; one that does not is listed as failed (exit code 1; under a warn
                       rule it stays cached)
  --json               a JSON report on stdout instead of progress and tables`;

interface Row { name: string; digest?: string; status: 'fetched' | 'cached' | 'failed'; fetched: number; cached: number; blobs: number; reason?: string }

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    file: { type: 'string' }, platform: { type: 'string' }, jobs: { type: 'string', short: 'j' }, pin: { type: 'boolean' }, verify: { type: 'boolean' },
    json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) { process.stdout.write(`${HELP}\n`); return 0; }
  const names = [...positionals, ...(values.file ? await readList(values.file) : [])];
  if (names.length === 0) throw new UsageError('name images to prefetch, or --file LIST');
  let platforms: Platform[] | undefined;
  try {
    platforms = values.platform ? parsePlatforms(values.platform) : undefined;
  } catch (e) {
    throw new UsageError(`--platform: ${(e as Error).message}`);
  }
  const jobs = values.jobs === undefined ? 2 : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new UsageError('-j: a number from 1 to 64');
  const config = readConfig(values.config);
  if (config.upstreams.length === 0) throw new UsageError('the config names no upstream: there is nothing to prefetch from');
  if (values.verify && !config.policy) throw new UsageError('--verify needs a signature policy (policy: in the config)');
  const log = toolLogger(config);
  const services = await openServices(config, log);
  const reporter = createReporter('prefetch', { json: values.json === true });
  const started = Date.now();
  try {
    const selector = new ImageSelector(services.registry, services.metadata, services.router);
    const rows: Row[] = [];
    const queue = [...names];
    const worker = async () => {
      for (let text = queue.shift(); text !== undefined; text = queue.shift()) {
        const selected = await selector.resolve(text);
        const row: Row = { name: text, status: 'failed', fetched: 0, cached: 0, blobs: 0 };
        rows.push(row);
        if (!selected) { row.reason = 'not an image reference'; reporter.end(text, 'failed', row.reason); continue; }
        row.name = `${selected.name.repo}${selected.name.tag !== undefined ? `:${selected.name.tag}` : `@${selected.name.digest}`}`;
        if (!selected.upstream) { row.reason = 'a local repository, not a cache of an upstream'; reporter.end(row.name, 'failed', row.reason); continue; }
        reporter.begin(row.name, 0);
        try {
          const ref = selected.name.digest ? { kind: 'digest' as const, digest: selected.name.digest } : { kind: 'tag' as const, tag: selected.name.tag! };
          const r = await pullImage(services.proxy!, selected.name.repo, ref, {
            ...(platforms ? { platforms } : {}),
            onTotal: (n) => reporter.grow(row.name, n),
            onBytes: (n) => reporter.advance(row.name, n),
          });
          if (values.pin) services.maintenance.pins.add(row.name);
          Object.assign(row, { digest: r.digest, fetched: r.fetched, cached: r.cached, blobs: r.blobs, status: r.fetched > 0 ? 'fetched' : 'cached' });
          const refusal = values.verify ? (await verifySelection(services, [{ ...selected, name: { repo: selected.name.repo, digest: r.digest } }], 'prefetch'))[0] : undefined;
          if (refusal) Object.assign(row, { status: 'failed', reason: refusal.reason });
          reporter.end(row.name, refusal ? 'failed' : r.fetched > 0 ? 'done' : 'skipped', refusal?.reason);
        } catch (e) {
          row.reason = (e as Error).message;
          reporter.end(row.name, 'failed', row.reason);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, names.length) }, worker));
    reporter.close();
    const ms = Date.now() - started;
    const failed = rows.filter((r) => r.status === 'failed');
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ images: rows, ms })}\n`);
    } else {
      process.stdout.write(`${table(['image', 'digest', 'status', 'fetched', 'cached'], rows.map((r) => [
        r.name, r.digest ?? '-', r.status === 'failed' ? `failed: ${r.reason}` : r.status, formatBytes(r.fetched), formatBytes(r.cached)]))}\n\n`);
      process.stdout.write(`${table(['images', 'blobs', 'bytes', 'skipped', 'failed', 'time'], [[
        rows.filter((r) => r.status === 'fetched').length, rows.reduce((n, r) => n + r.blobs, 0), formatBytes(rows.reduce((n, r) => n + r.fetched, 0)),
        rows.filter((r) => r.status === 'cached').length, failed.length, formatSeconds(ms)]])}\n`);
    }
    return failed.length > 0 ? 1 : 0;
  } finally {
    reporter.close();
    await services.close();
  }
}
