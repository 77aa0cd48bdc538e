/**
 * stowage export --config FILE -o OUT [IMAGE...] [--file LIST] [--all] [--repository GLOB]
 *   [--since DATE|DURATION] [--exclude-bundle PREV] [--split SIZE] [--json]
 */
import { readFile } from 'node:fs/promises';
import { exportImages } from '../bundle/export.js';
import { ImageSelector } from '../bundle/select.js';
import { DirSink, TarSink } from '../bundle/sink.js';
import { openSource } from '../bundle/source.js';
import { signatureTagsFor } from '../policy/companions.js';
import { verifySelection } from './verify.js';
import { openServices, parse, parseSince, parseSize, readConfig, toolLogger, UsageError } from './common.js';
import { createReporter, formatBytes, formatRate, formatSeconds, table } from './progress.js';

export const HELP = `usage: stowage export --config FILE -o OUT [IMAGE...] [options]

Writes images as an OCI image layout: a directory, or a tar when OUT ends in .tar. index.json
names each image by its full reference (docker.io/library/alpine:3.20), so
'skopeo copy oci-archive:OUT:docker.io/library/alpine:3.20 ...' reads it. Referrers travel along.

  IMAGE...              images by name (alpine:3.20, docker.io/library/alpine:3.20, team/app:1.0)
  --file LIST           more names, one a line (# comments)
  --all                 every tag of every repository
  --repository GLOB     every tag of the repositories matching GLOB (docker.io/library/*); repeatable
  --since DATE|DUR      only images pulled since then (2026-11-01, 7d, 36h), from the access records
  --exclude-bundle PREV leave out blobs the bundle PREV already holds (a delta for the other side)
  --split SIZE          cut the tar into parts of SIZE (e.g. 4GiB): OUT.000, OUT.001, ... + SHA256SUMS
  --verify              export only images that satisfy the signature policy (policy:), warn rules
                        counting as enforce; the others are listed as failed (exit code 1)
  --json                a JSON report on stdout instead of progress and tables

Signatures travel along: OCI 1.1 referrers, and cosign's sha256-<digest>.sig tags of the images.`;

export async function readList(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch((e: Error) => { throw new UsageError(`--file: ${e.message}`); });
  return text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    output: { type: 'string', short: 'o' }, file: { type: 'string' }, all: { type: 'boolean' },
    repository: { type: 'string', multiple: true }, since: { type: 'string' }, 'exclude-bundle': { type: 'string' },
    split: { type: 'string' }, json: { type: 'boolean' }, verify: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) { process.stdout.write(`${HELP}\n`); return 0; }
  const out = values.output;
  if (!out) throw new UsageError('-o OUT is required (a directory, or a file ending in .tar)');
  const isTar = out.endsWith('.tar');
  const split = values.split === undefined ? undefined : parseSize(values.split, '--split');
  if (split !== undefined && !isTar) throw new UsageError('--split needs a .tar output');
  const names = [...positionals, ...(values.file ? await readList(values.file) : [])];
  const since = values.since === undefined ? undefined : parseSince(values.since);
  if (names.length === 0 && !values.all && !values.repository && since === undefined) {
    throw new UsageError('nothing selected: name images, or use --file, --all, --repository or --since');
  }
  const config = readConfig(values.config);
  if (values.verify && !config.policy) throw new UsageError('--verify needs a signature policy (policy: in the config)');
  const log = toolLogger(config);
  const exclude = new Set<string>();
  if (values['exclude-bundle']) {
    const prev = await openSource(values['exclude-bundle']).catch((e: Error) => { throw new UsageError(`--exclude-bundle: ${e.message}`); });
    await prev.scan(async (digest) => { exclude.add(digest); });
  }
  const services = await openServices(config, log);
  const reporter = createReporter('export', { json: values.json === true });
  try {
    const selector = new ImageSelector(services.registry, services.metadata, services.router);
    const selection = await selector.select({
      images: names, all: values.all === true, ...(values.repository ? { repositories: values.repository } : {}),
      ...(since !== undefined ? { since } : {}),
    });
    if (selection.unknown.length > 0) throw new UsageError(`not image references: ${selection.unknown.join(', ')}`);
    const refused = values.verify ? await verifySelection(services, selection.images, 'export') : [];
    const images = selection.images.filter((s) => !refused.some((r) => r.image === s));
    for (const { repo, tag } of await signatureTagsFor(services.registry, images.map((s) => s.name))) {
      const upstream = selector.upstreamOf(repo);
      if (!images.some((s) => s.name.repo === repo && s.name.tag === tag)) images.push({ name: { repo, tag }, ...(upstream ? { upstream } : {}) });
    }
    const sink = isTar ? new TarSink(out, split) : new DirSink(out);
    const report = await exportImages(images, { ...services, ...(services.proxy ? { proxy: services.proxy } : {}), log, progress: reporter }, sink, exclude);
    report.images.push(...refused.map((r) => ({ name: r.name, status: 'failed' as const, bytes: 0, referrers: 0, reason: r.reason, ...(r.digest ? { digest: r.digest } : {}) })));
    reporter.close();
    const failed = report.images.filter((i) => i.status === 'failed');
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      process.stdout.write(`${table(['image', 'digest', 'status', 'bytes', 'referrers'], report.images.map((i) => [
        i.name, i.digest ?? '-', i.status === 'failed' ? `failed: ${i.reason}` : i.status, formatBytes(i.bytes), i.referrers]))}\n\n`);
      process.stdout.write(`${table(['images', 'blobs', 'bytes', 'skipped', 'failed', 'time', 'rate'], [[
        report.images.length - failed.length, report.blobs.written, formatBytes(report.bytes),
        report.blobs.excluded + report.blobs.shared, failed.length, formatSeconds(report.ms), formatRate(report.bytes, report.ms)]])}\n`);
      process.stdout.write(`wrote ${report.files.join(', ')}\n`);
    }
    return failed.length > 0 ? 1 : 0;
  } finally {
    reporter.close();
    await services.close();
  }
}
