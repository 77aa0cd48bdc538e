/** stowage verify --config FILE IMAGE... [--json]; and the --verify of export and prefetch. */
import { pullImage } from '../bundle/pull.js';
import { ImageSelector, type SelectedImage } from '../bundle/select.js';
import { formatImageName } from '../bundle/layout.js';
import { RegistryError } from '../errors.js';
import type { Services } from '../main.js';
import type { Digest } from '../oci/digest.js';
import type { Decision, Where } from '../policy/gate.js';
import { openServices, parse, readConfig, toolLogger, UsageError } from './common.js';
import { table } from './progress.js';

export const HELP = `usage: stowage verify --config FILE IMAGE... [--json]

Reports, for images held in storage, which signature rule (policy:) applies and which keys signed
them (cosign signatures: sha256-<digest>.sig tags and Sigstore bundle referrers held beside the
image). Nothing is fetched: it works in an isolated network. A platform manifest may be covered
by its signed index. Exit code 1 when an image is not held, or lacks the signature its rule
(enforce or warn) asks for.

  --json    a JSON report on stdout instead of a table`;

interface Row { name: string; digest?: string; decision?: Decision; error?: string }

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) { process.stdout.write(`${HELP}\n`); return 0; }
  if (positionals.length === 0) throw new UsageError('name images to verify');
  const config = readConfig(values.config);
  if (!config.policy) throw new UsageError('the config has no signature policy (policy:)');
  const log = toolLogger(config);
  const services = await openServices(config, log);
  try {
    const selector = new ImageSelector(services.registry, services.metadata, services.router);
    const rows: Row[] = [];
    for (const text of positionals) {
      const selected = await selector.resolve(text);
      if (!selected) { rows.push({ name: text, error: 'not an image reference' }); continue; }
      const row: Row = { name: formatImageName(selected.name) };
      rows.push(row);
      const digest = await heldDigest(services, selected);
      if (!digest) { row.error = 'not held in storage'; continue; }
      row.digest = digest;
      row.decision = await services.signatures!.evaluateHeld('verify', selected.name.repo, digest, false);
    }
    const failed = rows.filter((r) => r.error !== undefined || r.decision?.status === 'unsigned');
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ images: rows.map(jsonRow) })}\n`);
    } else {
      process.stdout.write(`${table(['image', 'digest', 'rule', 'status', 'signed by'], rows.map((r) => [
        r.name, r.digest ?? '-', ruleText(r.decision), r.error ?? statusText(r.decision!), signersText(r.decision)]))}\n`);
      for (const r of rows) for (const p of r.decision?.status === 'unsigned' ? r.decision.problems : []) process.stdout.write(`${r.name}: ${p}\n`);
    }
    return failed.length > 0 ? 1 : 0;
  } finally {
    await services.close();
  }
}

/** The digest an image has in storage, without fetching anything. */
async function heldDigest(services: Services, s: SelectedImage): Promise<Digest | undefined> {
  const ref = s.name.digest ? { kind: 'digest' as const, digest: s.name.digest } : { kind: 'tag' as const, tag: s.name.tag! };
  return services.registry.manifests.resolve(s.name.repo, ref);
}

export interface Refusal { image: SelectedImage; name: string; digest?: Digest; reason: string }

/**
 * export/prefetch --verify: each image checked against its rule, warn counting as enforce. A
 * cached image not held yet is pulled through the cache first (the fill checks it too).
 */
export async function verifySelection(services: Services, images: readonly SelectedImage[], where: Where): Promise<Refusal[]> {
  const refused: Refusal[] = [];
  for (const image of images) {
    const name = formatImageName(image.name);
    let digest = await heldDigest(services, image);
    try {
      if (!digest && image.upstream && services.proxy) {
        digest = (await pullImage(services.proxy, image.name.repo, image.name.digest ? { kind: 'digest', digest: image.name.digest } : { kind: 'tag', tag: image.name.tag! })).digest;
      }
      if (!digest) { refused.push({ image, name, reason: 'not held in storage' }); continue; }
      await services.signatures!.evaluateHeld(where, image.name.repo, digest, true);
    } catch (e) {
      if (!(e instanceof RegistryError)) throw e;
      refused.push({ image, name, reason: e.message, ...(digest ? { digest } : {}) });
    }
  }
  return refused;
}

function ruleText(d: Decision | undefined): string {
  return d?.rule ? `${d.rule.number}: ${d.rule.repository} (${d.rule.mode})` : '-';
}

function statusText(d: Decision): string {
  return d.viaIndex ? `signed (through index ${d.viaIndex})` : d.status;
}

function signersText(d: Decision | undefined): string {
  if (!d || d.signers.length === 0) return '-';
  return d.signers.map((s) => `${s.set}: ${s.file} (${s.form === 'cosign' ? 'cosign .sig' : 'sigstore bundle'})`).join(', ');
}

function jsonRow(r: Row): Record<string, unknown> {
  const d = r.decision;
  return {
    name: r.name, ...(r.digest ? { digest: r.digest } : {}), ...(r.error ? { error: r.error } : {}),
    ...(d ? { status: d.status, rule: d.rule ?? null, signers: d.signers, ...(d.viaIndex ? { viaIndex: d.viaIndex } : {}), problems: d.problems } : {}),
  };
}
