/**
 * The signature policy's one decision: may this manifest of this repository enter (a fill, a push,
 * an import) or be served? `evaluate` finds out what the rule says and who signed the manifest;
 * `admit` acts on it: enforce refuses with 403 DENIED and a one-line reason naming the rule, warn
 * lets it through and logs; both are counted and reported as `policy` events.
 *
 * Results are remembered per manifest digest and key sets (a signature that verified stays valid
 * until a key file changes, which drops them all). An unsigned result is remembered only when an
 * upstream was asked, for a short while and per repository (a signature may appear upstream any
 * time); one from local storage alone is cheap to redo, and a signature pushed next counts at once.
 *
 * A source that cannot be asked (an upstream down) leaves the question open: enforce answers 503
 * UNAVAILABLE (try again later), not 403; warn lets the manifest through.
 *
 * An index (a multi-platform image) must be signed itself, as `cosign sign` does for a tag; its
 * platform manifests are admitted through it: one listed by a signed index of the same repository
 * passes without a signature of its own (one of its own counts too, for pulls by digest).
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { RegistryError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Digest } from '../oci/digest.js';
import type { EventSink } from '../notify/events.js';
import { isAccessory, tryParse } from './formats.js';
import { KeyRing } from './keys.js';
import { compileRules, describeKeySets, ruleFor, type PolicyRule, type PolicyRuleOptions } from './rules.js';
import type { SignatureSource } from './source.js';
import { verifyArtifacts, type SignatureArtifact, type Signer } from './verify.js';

export type Where = 'fill' | 'serve' | 'push' | 'import' | 'export' | 'prefetch' | 'verify';

export interface ManifestBytes { digest: Digest; bytes: Buffer; mediaType?: string; tag?: string }

export interface Decision {
  repository: string;
  digest: Digest;
  rule?: { number: number; repository: string; mode: PolicyRule['mode']; keys: readonly string[]; push: boolean };
  /** unchecked: no rule, mode off, or pushed content under a rule without push; exempt: a signature or attestation itself. */
  status: 'unchecked' | 'exempt' | 'signed' | 'unsigned';
  signers: Signer[];
  /** Admitted through this signed index, which lists the manifest. */
  viaIndex?: Digest;
  problems: string[];
  /** The one-line reason, when unsigned. */
  reason?: string;
  /** Set when unsigned only because a source could not be asked: enforce answers 503, not 403. */
  incomplete?: string;
}

export interface PolicyGateOptions {
  keys: Readonly<Record<string, readonly string[]>>;
  rules: readonly PolicyRuleOptions[];
  /** Results remembered (default 10 000). */
  cacheSize?: number;
  /** How long an unsigned result is remembered (default 30 s). */
  unsignedTtlMs?: number;
  reloadIntervalMs?: number;
}

export interface PolicyGateDeps { log: Logger; metrics?: Metrics; events?: EventSink }

interface Verdict {
  signers: Signer[];
  problems: string[];
  viaIndex?: Digest;
  /** For a signed index: its platform manifests, admitted through it. */
  children?: Digest[];
  /** A source could not be asked (an upstream down): an unsigned verdict is then not final. */
  incomplete?: string;
}
interface Computed { verdict: Verdict; keep?: () => Promise<void> }

export class PolicyGate {
  readonly rules: PolicyRule[];
  readonly keys: KeyRing;
  private readonly verdicts: LRUCache<string, Verdict>;
  /** "repo@platform manifest" -> the signed index that lists it. */
  private readonly children: LRUCache<string, Digest>;
  private readonly inflight = new Map<string, Promise<Computed>>();
  private readonly unsignedTtlMs: number;

  constructor(options: PolicyGateOptions, private readonly deps: PolicyGateDeps) {
    this.rules = compileRules(options.rules, Object.keys(options.keys));
    const max = options.cacheSize ?? 10_000;
    this.verdicts = new LRUCache({ max });
    this.children = new LRUCache({ max });
    this.unsignedTtlMs = options.unsignedTtlMs ?? 30_000;
    this.keys = new KeyRing({ sets: options.keys, ...(options.reloadIntervalMs !== undefined ? { reloadIntervalMs: options.reloadIntervalMs } : {}) },
      deps.log, () => this.forget());
  }

  ruleFor(repository: string): PolicyRule | undefined {
    return ruleFor(this.rules, repository);
  }

  /** What the policy says about a manifest, without acting on it. `pushed`: content pushed here (checked only under push rules). */
  async evaluate(repository: string, manifest: ManifestBytes, sources: readonly SignatureSource[], pushed = false): Promise<Decision> {
    return (await this.decide(repository, manifest, sources, pushed)).decision;
  }

  /**
   * Evaluates and acts: enforce (or `strict`) refuses an unsigned manifest with 403 DENIED; warn
   * logs it and lets it through. What an upstream source found is kept once admitted.
   */
  async admit(where: Where, repository: string, manifest: ManifestBytes, sources: readonly SignatureSource[],
    opts: { pushed?: boolean; strict?: boolean } = {}): Promise<Decision> {
    const { decision, keep } = await this.decide(repository, manifest, sources, opts.pushed === true);
    const rule = decision.rule;
    if (decision.status !== 'unsigned' || !rule) {
      if (rule && decision.status !== 'unchecked') this.deps.metrics?.policyDecisions.inc({ where, outcome: 'passed' });
      await this.runKeep(keep, repository);
      return decision;
    }
    const enforce = opts.strict === true || rule.mode === 'enforce';
    if (enforce && decision.incomplete) {
      this.deps.metrics?.policyDecisions.inc({ where, outcome: 'unavailable' });
      throw new RegistryError('UNAVAILABLE', `${repository}@${manifest.digest}: signatures could not be checked: ${decision.incomplete} (policy rule ${rule.number})`, { status: 503 });
    }
    const outcome = enforce ? 'denied' as const : 'warned' as const;
    this.deps.metrics?.policyDecisions.inc({ where, outcome });
    const facts = { rule: rule.number, mode: enforce ? 'enforce' as const : 'warn' as const, outcome, where, reason: decision.reason! };
    this.deps.log.warn({ repo: repository, digest: manifest.digest, ...facts, problems: decision.problems },
      enforce ? 'signature policy: refused' : 'signature policy (warn): let through unsigned');
    this.deps.events?.record({
      action: 'policy',
      target: { kind: 'manifest', repository, digest: manifest.digest, size: manifest.bytes.length, ...(manifest.mediaType ? { mediaType: manifest.mediaType } : {}), ...(manifest.tag ? { tag: manifest.tag } : {}) },
      policy: facts,
    });
    if (enforce) {
      throw new RegistryError('DENIED', decision.reason!, { detail: { repository, digest: manifest.digest, rule: rule.number, problems: decision.problems.slice(0, 5) } });
    }
    await this.runKeep(keep, repository);
    return decision;
  }

  close(): void {
    this.keys.close();
  }

  /** A key file changed: every remembered result may be wrong now. */
  forget(): void {
    this.verdicts.clear();
    this.children.clear();
  }

  private async decide(repository: string, manifest: ManifestBytes, sources: readonly SignatureSource[], pushed: boolean): Promise<{ decision: Decision; keep?: () => Promise<void> }> {
    const rule = this.ruleFor(repository);
    const base = { repository, digest: manifest.digest, signers: [], problems: [] };
    if (!rule || rule.mode === 'off' || (pushed && !rule.push)) return { decision: { ...base, status: 'unchecked', ...(rule ? { rule: ruleFacts(rule) } : {}) } };
    // The warm path (a verified manifest served again) is one lookup: no parsing.
    const known = this.verdicts.get(`${rule.keySetKey}|${manifest.digest}`);
    if (known) return { decision: this.signedDecision(rule, repository, manifest.digest, known) };
    const parsed = tryParse(manifest.bytes);
    if (parsed && isAccessory(parsed)) return { decision: { ...base, status: 'exempt', rule: ruleFacts(rule) } };
    const { verdict, keep } = await this.verdict(rule, repository, manifest, sources);
    if (verdict.signers.length > 0) {
      if (parsed?.hasManifestList) verdict.children ??= parsed.manifests.map((c) => c.digest);
      return { decision: this.signedDecision(rule, repository, manifest.digest, verdict), ...(keep ? { keep } : {}) };
    }
    const reason = rule.keys.length === 0
      ? `${repository}@${manifest.digest}: the rule names no key set, so nothing is admitted (policy rule ${rule.number})`
      : `${repository}@${manifest.digest}: no signature by a key of ${describeKeySets(rule)} (policy rule ${rule.number})`;
    const decision: Decision = { ...base, rule: ruleFacts(rule), status: 'unsigned', problems: verdict.problems, reason, ...(verdict.incomplete ? { incomplete: verdict.incomplete } : {}) };
    return { decision, ...(keep ? { keep } : {}) };
  }

  private signedDecision(rule: PolicyRule, repository: string, digest: Digest, verdict: Verdict): Decision {
    for (const child of verdict.children ?? []) this.children.set(`${repository}@${child}`, digest);
    return {
      repository, digest, rule: ruleFacts(rule), status: 'signed', signers: verdict.signers, problems: verdict.problems,
      ...(verdict.viaIndex ? { viaIndex: verdict.viaIndex } : {}),
    };
  }

  private async verdict(rule: PolicyRule, repository: string, manifest: ManifestBytes, sources: readonly SignatureSource[]): Promise<Computed> {
    const signedKey = `${rule.keySetKey}|${manifest.digest}`;
    const unsignedKey = `${signedKey}|${repository}`;
    const known = this.verdicts.get(signedKey) ?? this.verdicts.get(unsignedKey) ?? this.throughIndex(rule, repository, manifest.digest);
    if (known) return { verdict: known };
    let flight = this.inflight.get(unsignedKey);
    if (!flight) {
      const generation = this.keys.generation;
      flight = this.compute(rule, repository, manifest, sources).then((c) => {
        // A key file changed meanwhile: the result may be stale, so it is used once and not remembered.
        if (generation === this.keys.generation) {
          if (c.verdict.signers.length > 0) this.verdicts.set(signedKey, c.verdict);
          else if (sources.some((s) => s.remote) && !c.verdict.incomplete) this.verdicts.set(unsignedKey, c.verdict, { ttl: this.unsignedTtlMs });
        }
        return c;
      }).finally(() => this.inflight.delete(unsignedKey));
      this.inflight.set(unsignedKey, flight);
      return flight;
    }
    return { verdict: (await flight).verdict };
  }

  /** A platform manifest listed by an index of the repository that is known to be signed. */
  private throughIndex(rule: PolicyRule, repository: string, digest: Digest): Verdict | undefined {
    const index = this.children.get(`${repository}@${digest}`);
    const signed = index ? this.verdicts.get(`${rule.keySetKey}|${index}`) : undefined;
    return index && signed ? { signers: signed.signers, problems: [], viaIndex: index } : undefined;
  }

  private async compute(rule: PolicyRule, repository: string, manifest: ManifestBytes, sources: readonly SignatureSource[]): Promise<Computed> {
    const keys = this.keys.keysOf(rule.keys);
    const problems: string[] = [];
    let keep: (() => Promise<void>) | undefined;
    let incomplete: string | undefined;
    for (const source of sources) {
      let artifacts: SignatureArtifact[];
      try {
        artifacts = await source.signatures(manifest.digest);
      } catch (e) {
        incomplete = `${source.name} could not be asked (${(e as Error).message})`;
        problems.push(incomplete);
        continue;
      }
      if (artifacts.length === 0) continue;
      const v = verifyArtifacts(manifest.digest, manifest.bytes, artifacts, keys);
      problems.push(...v.problems.map((p) => `${source.name}: ${p}`));
      if (source.keep && !keep) keep = once(() => source.keep!(artifacts));
      if (v.signers.length > 0) {
        this.deps.metrics?.policyVerifications.inc({ result: 'signed' });
        return { verdict: { signers: v.signers, problems }, keep };
      }
    }
    for (const source of sources) {
      for (const index of (await source.indexesListing?.(manifest.digest)) ?? []) {
        const parent = await this.verdict(rule, repository, { digest: index.digest, bytes: index.bytes }, sources);
        if (parent.verdict.signers.length > 0) {
          this.children.set(`${repository}@${manifest.digest}`, index.digest);
          return { verdict: { signers: parent.verdict.signers, problems: [], viaIndex: index.digest } };
        }
      }
    }
    this.deps.metrics?.policyVerifications.inc({ result: 'unsigned' });
    if (problems.length === 0) problems.push('no signature found');
    return { verdict: { signers: [], problems, ...(incomplete ? { incomplete } : {}) }, ...(keep ? { keep } : {}) };
  }

  private async runKeep(keep: (() => Promise<void>) | undefined, repository: string): Promise<void> {
    try {
      await keep?.();
    } catch (e) {
      this.deps.log.warn({ repo: repository, err: (e as Error).message }, 'signatures not kept in the cache');
    }
  }
}

function ruleFacts(rule: PolicyRule): NonNullable<Decision['rule']> {
  return { number: rule.number, repository: rule.repository, mode: rule.mode, keys: rule.keys, push: rule.push };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}
