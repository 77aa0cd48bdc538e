/**
 * The signature policy as the rest of stowage calls it: one call per place where content enters
 * or leaves, each building the right signature sources for that place and asking the gate.
 *
 *   fill    proxy/pull-through.ts, before a manifest fetched from an upstream is stored
 *   serve   http/routes/manifests.ts, before a manifest is answered (remembered results: cheap)
 *   push    http/routes/manifests.ts, before a pushed manifest is stored (rules with push: true)
 *   import  bundle/import.ts, before an image of a bundle is put
 *   export / prefetch / verify   the cli, on held content
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { MetadataIndex } from '../metadata/port.js';
import type { Metrics } from '../metrics.js';
import { digestOf, type Digest } from '../oci/digest.js';
import type { Reference, RepoName } from '../oci/reference.js';
import type { LocalRegistry } from '../registry/registry.js';
import { RegistryError } from '../errors.js';
import { BundleSignatureSource, type BundleEntryLike } from './bundle-source.js';
import { PolicyGate, type Decision, type ManifestBytes, type Where } from './gate.js';
import { LocalSignatureSource } from './local-source.js';
import type { SignatureSource } from './source.js';
import { CacheSignatureKeeper } from './store.js';
import { UpstreamSignatureSource, type UpstreamRoute } from './upstream-source.js';

export interface SignaturePolicyDeps { registry: LocalRegistry; metadata: MetadataIndex; log: Logger; metrics?: Metrics }

export class SignaturePolicy {
  readonly gate: PolicyGate;
  private readonly keeper: CacheSignatureKeeper;

  constructor(config: NonNullable<Config['policy']>, private readonly deps: SignaturePolicyDeps, options: { reloadIntervalMs?: number } = {}) {
    const log = deps.log.child({ component: 'policy' });
    this.gate = new PolicyGate({ keys: config.keys, rules: config.rules, cacheSize: config.cache_size, ...options },
      { log, events: deps.registry.events, ...(deps.metrics ? { metrics: deps.metrics } : {}) });
    this.keeper = new CacheSignatureKeeper(deps.registry, deps.metadata, log);
    const keys = Object.fromEntries(Object.keys(config.keys).map((set) => [set, this.gate.keys.keysOf([set]).length]));
    log.info({ rules: this.gate.rules.map((r) => `${r.number}: ${r.repository} ${r.mode}${r.push ? ' +push' : ''} [${r.keys.join(', ')}]`), keys },
      'signature policy loaded');
  }

  /** Pull-through: a manifest fetched from route's upstream, before it is stored. */
  async admitFill(route: UpstreamRoute, digest: Digest, bytes: Buffer, mediaType?: string): Promise<void> {
    if (!this.gate.ruleFor(route.cacheRepo)) return;
    await this.gate.admit('fill', route.cacheRepo, { digest, bytes, ...(mediaType ? { mediaType } : {}) },
      [new UpstreamSignatureSource(route, this.keeper), this.local(route.cacheRepo)]);
  }

  /**
   * A manifest about to be served. `outcome` is the pull-through's (undefined without upstreams):
   * a miss was decided by its fill; local content is pushed content, checked under push rules.
   */
  async admitServed(name: RepoName, manifest: ManifestBytes, outcome: string | undefined, route: UpstreamRoute | undefined): Promise<void> {
    if (outcome === 'miss') return;
    const pushed = outcome === undefined || outcome === 'local' || !route;
    const repo = pushed ? name : route.cacheRepo;
    if (!this.gate.ruleFor(repo)) return;
    const sources = pushed ? [this.local(repo)] : [this.local(repo), new UpstreamSignatureSource(route, this.keeper)];
    await this.gate.admit('serve', repo, manifest, sources, { pushed });
  }

  /**
   * A manifest pushed into `name` by tag, before it is stored. A push by digest (the platform
   * manifests of an index come first, unsigned, before the index that covers them) is let in:
   * it is held to the rule when it is pulled, and no tag can point at it unless it passes.
   */
  async admitPush(name: RepoName, reference: Reference, bytes: Buffer): Promise<void> {
    if (reference.kind !== 'tag' || !this.gate.ruleFor(name)?.push) return;
    await this.gate.admit('push', name, { digest: digestOf(bytes), bytes }, [this.local(name)], { pushed: true });
  }

  /**
   * For `stowage import`: a check per image of the bundle, whose signatures are looked for among
   * the bundle's entries (read from storage, where the import staged every blob) and in storage.
   * Answers the refusal reason, or undefined when the image may be imported.
   */
  forImport(entries: readonly BundleEntryLike[], read: (digest: Digest) => Promise<Buffer | undefined>) {
    return async (repo: RepoName, digest: Digest, bytes: Buffer, pushed: boolean): Promise<string | undefined> => {
      try {
        await this.gate.admit('import', repo, { digest, bytes }, [new BundleSignatureSource(repo, entries, read), this.local(repo)], { pushed });
        return undefined;
      } catch (e) {
        if (e instanceof RegistryError && e.code === 'DENIED') return e.message;
        throw e;
      }
    };
  }

  /**
   * Held content, for verify / export --verify / prefetch --verify: checked under its rule whether
   * it was pushed or cached (strict: warn counts as enforce, and refusals throw).
   */
  async evaluateHeld(where: Where, repo: RepoName, digest: Digest, strict: boolean): Promise<Decision> {
    const m = await this.deps.registry.manifests.load(digest);
    if (!m) throw new Error(`${repo}@${digest} is not in storage`);
    const manifest = { digest, bytes: m.bytes, mediaType: m.mediaType };
    if (!strict) return this.gate.evaluate(repo, manifest, [this.local(repo)]);
    return this.gate.admit(where, repo, manifest, [this.local(repo)], { strict: true });
  }

  close(): void {
    this.gate.close();
  }

  private local(repo: RepoName): SignatureSource {
    return new LocalSignatureSource(this.deps.registry, repo);
  }
}
