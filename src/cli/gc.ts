/** stowage gc --config FILE [--dry-run] [--delete-untagged] [--grace DURATION] [--json] */
import { parseGoDuration } from '../config/duration.js';
import { DEFAULT_GC_GRACE_MS } from '../lifecycle/gc.js';
import { openServices, parse, readConfig, toolLogger, UsageError } from './common.js';
import { formatBytes, formatSeconds, table } from './progress.js';

export const HELP = `usage: stowage gc --config FILE [--dry-run] [--delete-untagged] [--grace DURATION] [--json]

Removes blobs that no manifest of any repository references, and with --delete-untagged the
manifests of pushed repositories that no tag reaches (referrers of reached manifests stay).
Safe while a server on the same config accepts pushes: nothing recorded or used within the grace
period (default 10m) before the run is touched, and every removal is checked again around the act.

  --dry-run            report what would go; change nothing
  --delete-untagged    also remove untagged manifests of pushed repositories
  --grace DURATION     keep content used this recently (Go duration: 10m, 1h, 0s)
  --json               a JSON report on stdout`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    'dry-run': { type: 'boolean' }, 'delete-untagged': { type: 'boolean' }, grace: { type: 'string' },
    json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, false);
  if (values.help) { process.stdout.write(`${HELP}\n`); return 0; }
  void positionals;
  let graceMs = DEFAULT_GC_GRACE_MS;
  if (values.grace !== undefined) {
    try { graceMs = parseGoDuration(values.grace); } catch { throw new UsageError(`--grace: not a duration: ${values.grace}`); }
  }
  const config = readConfig(values.config);
  const log = toolLogger(config);
  const services = await openServices(config, log);
  try {
    const report = await services.maintenance.gc.run({ dryRun: values['dry-run'] === true, deleteUntagged: values['delete-untagged'] === true, graceMs });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      for (const m of report.manifests) process.stdout.write(`${report.dryRun ? 'would remove' : 'removed'} manifest ${m.repo}@${m.digest}\n`);
      process.stdout.write(`${table(['manifests', 'blobs', 'bytes freed', 'time'], [[report.manifests.length, report.blobs, formatBytes(report.bytesFreed), formatSeconds(report.ms)]])}\n`);
      if (report.dryRun) process.stdout.write('dry run: nothing was removed\n');
    }
    return 0;
  } finally {
    await services.close();
  }
}
