/** stowage import --config FILE BUNDLE [--json] */
import { importBundle } from '../bundle/import.js';
import { openSource } from '../bundle/source.js';
import { openServices, parse, readConfig, toolLogger, UsageError } from './common.js';
import { createReporter, formatBytes, formatRate, formatSeconds, table } from './progress.js';

export const HELP = `usage: stowage import --config FILE BUNDLE [--json]

Loads a bundle into storage: a directory or a tar (or its parts: BUNDLE.tar.000, ...) in OCI
image layout, from 'stowage export' or any other tool (skopeo copy ... oci:DIR:docker.io/x/y:tag).
Every blob and manifest is verified against its digest and size before it becomes visible.
Images named after a configured upstream (docker.io/library/alpine:3.20) become cached content
of it; anything else is pushed content. Re-running skips what is stored. Damaged images, and
images the signature policy (policy:) refuses, are refused and listed, the rest imported, and
the exit code is 1. Signatures are looked for in the bundle itself (and in storage).
Works beside a running server on the same config, and on a stopped data directory.`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) { process.stdout.write(`${HELP}\n`); return 0; }
  if (positionals.length !== 1) throw new UsageError('name one BUNDLE (a directory, a .tar, or its first part)');
  const source = await openSource(positionals[0]!).catch((e: Error) => { throw new UsageError(e.message); });
  const config = readConfig(values.config);
  const log = toolLogger(config);
  const services = await openServices(config, log);
  const reporter = createReporter('import', { json: values.json === true });
  try {
    const report = await importBundle(source, {
      registry: services.registry, metadata: services.metadata, upstreams: config.upstreams.map((u) => u.name), log, progress: reporter,
      ...(services.signatures ? { signatures: services.signatures } : {}),
    });
    reporter.close();
    const failed = report.images.filter((i) => i.status === 'failed');
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      process.stdout.write(`${table(['image', 'digest', 'kind', 'status'], report.images.map((i) => [
        i.name, i.digest, i.kind ?? '-', i.status === 'failed' ? `REFUSED: ${i.reason}` : i.status]))}\n\n`);
      for (const p of report.problems) process.stdout.write(`problem: ${p}\n`);
      process.stdout.write(`${table(['images', 'blobs', 'bytes', 'skipped', 'failed', 'time', 'rate'], [[
        report.images.filter((i) => i.status === 'imported').length, report.blobs.stored, formatBytes(report.bytes),
        report.images.filter((i) => i.status === 'present').length + report.blobs.present, failed.length + report.blobs.refused,
        formatSeconds(report.ms), formatRate(report.bytes, report.ms)]])}\n`);
    }
    return failed.length > 0 || report.problems.length > 0 ? 1 : 0;
  } finally {
    reporter.close();
    await services.close();
  }
}
