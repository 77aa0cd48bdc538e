/**
 * The cache policy, and the only place that has one: local first, then the cache, then the
 * upstream; tag freshness (TTL + HEAD revalidation with a deadline), stale-if-error, the negative
 * cache, single-flight for manifests and blobs. See DESIGN.md "Pull-through flows".
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { RegistryError } from '../errors.js';
import type { MetadataIndex, MetadataWriter } from '../metadata/port.js';
import type { Metrics } from '../metrics.js';
import { digestAlgorithm, digestOf, tryParseDigest, type Digest } from '../oci/digest.js';
import { ALL_MANIFEST_TYPES, bareMediaType } from '../oci/media-types.js';
import type { Reference, RepoName, Tag } from '../oci/reference.js';
import type { BlobRange } from '../registry/blob-store.js';
import { manifestUnknown, MAX_MANIFEST_BYTES, type StoredManifest } from '../registry/manifest-store.js';
import type { LocalRegistry, ReferrerDescriptor } from '../registry/registry.js';
import { UpstreamError, toRegistryError } from '../upstream/errors.js';
import type { UpstreamResponse } from '../upstream/client.js';
import type { HeldBudget } from '../upstream/held-budget.js';
import type { SpoolDir } from '../upstream/spool.js';
import type { BlobFill } from './blob-fill.js';
import { BlobMisses } from './blob-misses.js';
import type { ClusterFills } from './cluster-fills.js';
import { Prefetcher, type PrefetchOutcome } from './prefetch.js';
import { holdWhileStreaming } from './pull-hold.js';
import type { SignaturePolicy } from '../policy/policy.js';
import type { Route, UpstreamRouter } from './routing.js';

export type CacheOutcome = 'local' | 'hit' | 'miss' | 'stale' | 'joined' | 'revalidated';

export interface ManifestAnswer extends StoredManifest {
  outcome: CacheOutcome;
  /** Set when a stale answer is served because the upstream could not be asked. */
  warning?: string | undefined;
  namespace?: string | undefined;
  /** The route an answer through the cache came by (absent for local content). */
  route?: Route | undefined;
}

/**
 * An answer built field by field, always in one shape: a spread of the stored manifest took V8's
 * slow object-cloning path and was the largest single item of a warm manifest GET's profile.
 */
function answerOf(m: StoredManifest, outcome: CacheOutcome, warning?: string): ManifestAnswer {
  return { digest: m.digest, mediaType: m.mediaType, bytes: m.bytes, subject: m.subject, outcome, warning, namespace: undefined, route: undefined };
}

export interface BlobAnswer {
  /** Bytes the response will carry; undefined when the upstream did not announce a length. */
  size: number | undefined;
  outcome: CacheOutcome;
  namespace?: string | undefined;
  /** Streams the blob (a range only once it is complete and verified). */
  open(range?: BlobRange): Promise<Readable>;
  /** True when the whole blob is verified in storage, so ranges can be served now. */
  complete: boolean;
  /** Waits until the blob is complete (for range requests on a blob being fetched). */
  whenComplete(): Promise<number>;
}

export interface PullThroughDeps {
  registry: LocalRegistry;
  router: UpstreamRouter;
  metadata: MetadataIndex;
  log: Logger;
  metrics?: Metrics;
  now?: () => number;
  /** Replicas: one upstream fetch per blob across them (absent: a single process). */
  cluster?: ClusterFills;
  /** Signature policy: a fetched manifest is verified before it is stored. */
  signatures?: SignaturePolicy;
  /** cache.max_size (0: none): layer prefetch never takes cached content over it. */
  budgetBytes?: number;
  /** ranges.max_memory, shared by every ranged fetch of the process. */
  rangedBudget?: HeldBudget;
  /** ranges.spool_dir: where ranged fetches' later chunks wait for their turn. */
  spoolDir?: SpoolDir;
}

const STALE_WARNING = '110 - "Response is Stale"';

/** A tag revalidation in flight, shared by every request for that tag meanwhile. */
interface Revalidation { answer: Promise<ManifestAnswer>; startedAt: number }

export class PullThrough {
  private readonly inflight = new Map<string, Promise<ManifestAnswer>>();
  private readonly revalidations = new Map<string, Revalidation>();
  private readonly misses: BlobMisses;
  private readonly prefetcher: Prefetcher;
  private readonly now: () => number;

  constructor(private readonly deps: PullThroughDeps) {
    this.now = deps.now ?? Date.now;
    this.misses = new BlobMisses(deps);
    this.prefetcher = new Prefetcher({ ...deps, misses: this.misses });
  }

  /**
   * Where a request for `name` may go upstream. The prefix and `ns` routes always reach their
   * upstream; the default upstream only serves names that hold no pushed content (DESIGN.md
   * "Local stays local"), so a pushed repository's misses are local 404s that cost no upstream.
   */
  async route(name: RepoName, ns: string | undefined): Promise<Route | undefined> {
    const route = this.deps.router.route(name, ns);
    if (route?.via === 'default' && (await this.deps.registry.local.has(name))) return undefined;
    return route;
  }

  /**
   * Whether `name` may hold pushed content to answer from before the cache: always without a
   * route; on the ?ns= route when the name is local. Never on the default route (route() keeps
   * local names off it) or on the prefix route (the name is the cache repository): there a
   * storage lookup would only find nothing, and costs a failed file open per request.
   */
  private async mayBeLocal(name: RepoName, route: Route | undefined): Promise<boolean> {
    if (!route) return true;
    if (route.cacheRepo === name || route.via === 'default') return false;
    return this.deps.registry.local.has(name);
  }

  /** Where content served for `name` through the cache is stored (its cache repository), if it routes upstream at all. */
  cacheRepoOf(name: RepoName, ns: string | undefined): RepoName | undefined {
    return this.deps.router.route(name, ns)?.cacheRepo;
  }

  /** A push just made `repo` local: say so when that hides cached content of the default upstream. */
  async noteNewLocal(repo: RepoName): Promise<void> {
    const route = this.deps.router.route(repo, undefined);
    if (route?.via !== 'default' || !(await this.deps.metadata.hasRepository(route.cacheRepo))) return;
    this.deps.log.warn({ repo, cacheRepo: route.cacheRepo, upstream: route.upstream.config.name },
      'a push made this repository local: the default upstream is no longer asked for it; its cached content stays reachable under the prefixed name');
  }

  // ---------------------------------------------------------------- manifests

  async manifest(name: RepoName, ref: Reference, ns: string | undefined, clientAccept: () => string[]): Promise<ManifestAnswer> {
    const { registry } = this.deps;
    const route = await this.route(name, ns);
    if (await this.mayBeLocal(name, route)) {
      const local = await registry.manifests.get(name, ref);
      if (local) return answerOf(local, 'local');
    }
    if (!route) throw manifestUnknown(ref.kind === 'tag' ? ref.tag : ref.digest);
    registry.noteUse(route.cacheRepo);
    const answer = ref.kind === 'digest'
      ? await this.manifestByDigest(route, ref.digest)
      : await this.manifestByTag(route, ref.tag, clientAccept);
    this.deps.metrics?.countCache('manifest', answer.outcome);
    // A copy: the answer of a fetch or a revalidation is shared by every request that joined it,
    // and those may have come by different routes to the same cache repository.
    const served = answerOf(answer, answer.outcome, answer.warning);
    served.namespace = route.upstream.config.name;
    served.route = route;
    return served;
  }

  private async manifestByDigest(route: Route, digest: Digest): Promise<ManifestAnswer> {
    const cached = await this.deps.registry.manifests.get(route.cacheRepo, { kind: 'digest', digest });
    if (cached) return answerOf(cached, 'hit');
    await this.checkNegative(route, digest);
    return this.singleFlight(`${route.cacheRepo}@${digest}`, () => this.fetchManifest(route, digest, undefined, ALL_MANIFEST_TYPES));
  }

  private async manifestByTag(route: Route, tag: Tag, clientAccept: () => string[]): Promise<ManifestAnswer> {
    const { metadata, registry, log } = this.deps;
    // Only a request that goes upstream needs it: not worked out for a cache hit.
    const accept = (): string[] => acceptFor(clientAccept());
    const upstream = route.upstream.config;
    const entry = await metadata.tagCache(upstream.name, route.remoteRepo, tag);
    const cached = entry ? await registry.manifests.get(route.cacheRepo, { kind: 'digest', digest: entry.digest as Digest }) : undefined;
    if (entry && cached) {
      if (this.now() - entry.checked_at < upstream.tagTtlMs) return answerOf(cached, 'hit');
      const revalidation = this.revalidation(`${route.cacheRepo}:${tag}`, () => this.revalidate(route, tag, cached, accept()));
      try {
        // One deadline per revalidation, counted from when it started: a request arriving while
        // an overdue HEAD is still pending gets the stale answer at once.
        return await withDeadline(revalidation.answer, revalidation.startedAt + upstream.revalidateTimeoutMs - this.now());
      } catch (err) {
        if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') throw err;
        log.warn({ repo: route.cacheRepo, tag, upstream: upstream.name, err: describe(err) }, 'upstream unavailable; serving stale tag');
        return answerOf(cached, 'stale', STALE_WARNING);
      }
    }
    if (!entry) {
      // A tag pushed straight into the cache repository (prefix route) is local content.
      const pushed = await registry.manifests.get(route.cacheRepo, { kind: 'tag', tag });
      if (pushed) return answerOf(pushed, 'local');
    }
    await this.checkNegative(route, tag);
    return this.singleFlight(`${route.cacheRepo}:${tag}`, () => this.fetchManifest(route, undefined, tag, accept()));
  }

  /** HEAD the tag upstream; same digest -> touch; new digest -> fetch it by digest. */
  private async revalidate(route: Route, tag: Tag, cached: StoredManifest, accept: string[]): Promise<ManifestAnswer> {
    const { metadata } = this.deps;
    const upstream = route.upstream.config;
    const res = await this.callUpstream(route, () => route.upstream.client.manifest(route.remoteRepo, tag, { method: 'HEAD', accept }));
    if (res.status === 404) {
      await metadata.write((w) => {
        w.deleteTagCache(upstream.name, route.remoteRepo, tag);
        this.rememberMissing(w, route, tag);
      });
      throw manifestUnknown(tag);
    }
    const headerDigest = tryParseDigest(String(res.headers['docker-content-digest'] ?? ''));
    if (headerDigest === cached.digest) {
      await metadata.write((w) => w.setTagCache(upstream.name, route.remoteRepo, tag, cached.digest, cached.mediaType, this.now()));
      return answerOf(cached, 'revalidated');
    }
    return this.fetchManifest(route, headerDigest, tag, accept);
  }

  /** GET a manifest upstream (by digest when known), verify, store, remember the tag. */
  private async fetchManifest(route: Route, digest: Digest | undefined, tag: Tag | undefined, accept: readonly string[]): Promise<ManifestAnswer> {
    const { registry, metadata } = this.deps;
    const upstream = route.upstream.config;
    const reference = digest ?? tag!;
    const res = await this.callUpstream(route, () => route.upstream.client.manifest(route.remoteRepo, reference, { method: 'GET', accept: [...accept] }));
    if (res.status === 404) {
      res.body?.destroy();
      await metadata.write((w) => {
        if (tag) w.deleteTagCache(upstream.name, route.remoteRepo, tag);
        this.rememberMissing(w, route, reference);
      });
      throw manifestUnknown(reference);
    }
    const bytes = await readBody(res, MAX_MANIFEST_BYTES);
    this.deps.metrics?.upstreamBytes.inc({ upstream: upstream.name }, bytes.length);
    const expected = digest ?? tryParseDigest(String(res.headers['docker-content-digest'] ?? ''));
    const actual = digestOf(bytes, expected ? digestAlgorithm(expected) : 'sha256');
    if (expected && actual !== expected) {
      this.deps.metrics?.digestMismatch.inc({ upstream: upstream.name });
      route.upstream.client.distrust?.(res.servedBy, 'digest mismatch');
      this.deps.log.warn({ repo: route.cacheRepo, reference, expected, actual, upstream: upstream.name }, 'upstream manifest failed digest verification; not cached');
      throw new RegistryError('UNAVAILABLE', 'upstream returned a manifest that does not match its digest', { status: 502, detail: { expected, actual } });
    }
    const contentType = bareMediaType(String(res.headers['content-type'] ?? '')) ;
    const ref: Reference = tag ? { kind: 'tag', tag } : { kind: 'digest', digest: actual };
    await this.deps.signatures?.admitFill(route, actual, bytes, contentType);
    await registry.manifests.put(route.cacheRepo, ref, bytes, contentType, { verifyReferences: false, origin: 'cached', upstream: upstream.name });
    const stored = await registry.manifests.load(actual);
    if (!stored) throw new RegistryError('UNKNOWN', 'cached manifest vanished');
    await metadata.write((w) => {
      if (tag) w.setTagCache(upstream.name, route.remoteRepo, tag, actual, stored.mediaType, this.now());
      w.clearNegative(upstream.name, route.remoteRepo, reference);
    });
    return answerOf(stored, 'miss');
  }

  // ---------------------------------------------------------------- blobs

  /**
   * A manifest GET was answered through the cache (access already granted): fetch the missing
   * blobs of an image manifest in the background (prefetch.ts). Not awaited by the request.
   */
  prefetchServed(name: RepoName, answer: ManifestAnswer): void {
    const { route } = answer;
    if (!route || answer.outcome === 'local' || this.prefetcher.knownComplete(route, answer.digest)) return;
    this.prefetcher.manifest(route, answer.bytes, {}, answer.digest)
      .catch((err: unknown) => this.deps.log.warn({ repo: name, err: describe(err) }, 'layer prefetch failed'));
  }

  /** `stowage prefetch`: every blob of the image manifest `bytes`, by the same queue; each one's outcome. */
  async prefetchWhole(name: RepoName, bytes: Buffer): Promise<PrefetchOutcome[]> {
    const route = await this.route(name, undefined);
    return route ? this.prefetcher.manifest(route, bytes, { whole: true }) : [];
  }

  /** `headOnly`: the client sent HEAD; a miss then asks the upstream with HEAD instead of fetching. */
  async blob(name: RepoName, digest: Digest, ns: string | undefined, headOnly = false): Promise<BlobAnswer> {
    const answer = await this.answerBlob(name, digest, ns, headOnly);
    if (answer.outcome === 'local') return answer;
    if (!headOnly) this.prefetcher.noteClientUse(digest);
    const cacheRepo = this.cacheRepoOf(name, ns);
    return cacheRepo ? holdWhileStreaming(answer, () => this.deps.registry.noteUse(cacheRepo)) : answer;
  }

  private async answerBlob(name: RepoName, digest: Digest, ns: string | undefined, headOnly: boolean): Promise<BlobAnswer> {
    const { registry } = this.deps;
    const route = await this.route(name, ns);
    if (await this.mayBeLocal(name, route)) {
      const size = await registry.blobs.sizeIn(name, digest);
      if (size !== undefined) return this.stored(digest, size, 'local', undefined);
    }
    if (!route) throw blobUnknown(digest);
    const namespace = route.upstream.config.name;
    registry.noteUse(route.cacheRepo);
    let size = await registry.blobs.sizeIn(route.cacheRepo, digest);
    if (size === undefined) {
      // Upstream eligibility: only a digest that a manifest cached in this repository references
      // is fetched (or served from bytes stored for another repository). Anything else is a local
      // 404 at once: no upstream is probed with arbitrary digests, and no pushed blob leaks into
      // a cache repository by its digest.
      if (!(await registry.isReferencedIn(route.cacheRepo, digest))) throw blobUnknown(digest);
      if (!this.misses.has(digest)) {
        size = await registry.blobs.dataSize(digest);
        if (size !== undefined) await registry.blobs.link(route.cacheRepo, digest);
      }
    }
    if (size !== undefined) {
      this.deps.metrics?.countCache('blob', 'hit');
      return this.stored(digest, size, 'hit', namespace);
    }
    const joined = this.misses.joining(digest);
    if (!joined && headOnly) return this.peek(route, digest, namespace);
    let miss = await (joined ?? this.misses.start(route, digest));
    if (miss.kind === 'peer') {
      const found = await this.misses.fromPeer(route, digest, miss.owner);
      if (found.kind === 'streaming') return this.fromPeer(found.owner, digest, found.size, namespace);
      miss = found;
    }
    if (miss.kind === 'stored') {
      await registry.blobs.link(route.cacheRepo, digest);
      this.deps.metrics?.countCache('blob', 'hit');
      return this.stored(digest, miss.size, 'hit', namespace);
    }
    const fill = miss.fill;
    // A fill started for another repository links the blob there only: link it here too once stored.
    const stored = fill.cacheRepo === route.cacheRepo ? fill.done : fill.done.then(() => registry.blobs.link(route.cacheRepo, digest));
    stored.catch(() => undefined); // awaited below, or by whenComplete; never an unhandled rejection
    if (joined && fill.state !== 'filling') {
      // Verified, only its commit (an fsync and a rename) to go: wait for it and serve the stored
      // blob, so this request comes after the fill in every record (logs, metrics, events).
      await stored.catch(() => {
        throw new RegistryError('UNAVAILABLE', 'the fetched blob could not be stored', { status: 503 });
      });
      this.deps.metrics?.countCache('blob', 'hit');
      return this.stored(digest, fill.written, 'hit', namespace);
    }
    const outcome: CacheOutcome = joined ? 'joined' : 'miss';
    this.deps.metrics?.countCache('blob', outcome);
    return {
      size: fill.size,
      outcome,
      namespace,
      complete: false,
      open: async (range) => (range ? registry.blobs.open(digest, range) : fill.reader()),
      whenComplete: async () => {
        await stored;
        return fill.written;
      },
    };
  }

  /** Another replica is fetching the blob: its bytes as they arrive there, checked here too. */
  private fromPeer(owner: string, digest: Digest, size: number | undefined, namespace: string | undefined): BlobAnswer {
    this.deps.metrics?.countCache('blob', 'joined');
    return {
      size,
      outcome: 'joined',
      namespace,
      complete: false,
      open: async (range) => {
        if (range) await this.misses.whenStored(digest);
        return this.misses.openPeer(owner, digest, range);
      },
      whenComplete: () => this.misses.whenStored(digest),
    };
  }

  /** Answers are built whole, not spread: see answerOf. */
  private stored(digest: Digest, size: number, outcome: CacheOutcome, namespace: string | undefined): BlobAnswer {
    const blobs = this.deps.registry.blobs;
    return { size, outcome, namespace, complete: true, open: (range) => blobs.open(digest, range), whenComplete: async () => size };
  }

  /** A HEAD for a blob nobody has fetched yet: the upstream's answer, nothing fetched or stored. */
  private async peek(route: Route, digest: Digest, namespace: string | undefined): Promise<BlobAnswer> {
    const res = await this.callUpstream(route, () => route.upstream.client.blob(route.remoteRepo, digest, { method: 'HEAD' }));
    const length = res.headers['content-length'];
    if (res.status === 404 || typeof length !== 'string' || !/^\d+$/.test(length)) throw blobUnknown(digest);
    const size = Number(length);
    this.deps.metrics?.countCache('blob', 'miss');
    return {
      size, outcome: 'miss', namespace, complete: true, whenComplete: async () => size,
      open: () => Promise.reject(new RegistryError('UNKNOWN', 'a HEAD answer has no body')),
    };
  }

  // ---------------------------------------------------------------- listings

  /** Local referrers merged with the upstream's (when it supports the referrers API). */
  async referrers(name: RepoName, digest: Digest, ns: string | undefined, artifactType: string | undefined): Promise<ReferrerDescriptor[]> {
    const { registry, log } = this.deps;
    const route = await this.route(name, ns);
    const local = await registry.referrers(name, digest, artifactType);
    if (!route) return local;
    const merged = new Map<string, ReferrerDescriptor>();
    for (const d of local) merged.set(d.digest, d);
    if (route.cacheRepo !== name) for (const d of await registry.referrers(route.cacheRepo, digest, artifactType)) merged.set(d.digest, d);
    try {
      const res = await route.upstream.client.referrers(route.remoteRepo, digest, artifactType === undefined ? {} : { artifactType });
      if (res && res.status === 200) {
        const doc = JSON.parse((await readBody(res, MAX_MANIFEST_BYTES)).toString('utf8')) as { manifests?: ReferrerDescriptor[] };
        for (const d of doc.manifests ?? []) {
          if (artifactType !== undefined && d.artifactType !== artifactType) continue;
          if (typeof d.digest === 'string' && !merged.has(d.digest)) merged.set(d.digest, d);
        }
      } else {
        res?.body?.destroy();
      }
    } catch (err) {
      log.debug({ err: describe(err), repo: route.cacheRepo }, 'upstream referrers unavailable; local only');
    }
    return [...merged.values()];
  }

  /** The repository whose tags a tags/list request should show. */
  async tagsRepository(name: RepoName, ns: string | undefined): Promise<RepoName> {
    return (await this.route(name, ns))?.cacheRepo ?? name;
  }

  // ---------------------------------------------------------------- shutdown (main.ts)

  /** Resolves once no upstream blob fill is starting or running (each committed or failed). */
  fillsSettled(): Promise<void> {
    this.prefetcher.stop(); // no new fill starts from the queue while the running ones drain
    return this.misses.settled();
  }

  /** Cuts every running fill (the drain time is up); nothing partial is committed. */
  abortFills(): void {
    this.misses.abort();
  }

  /** A fill this process is running, for another replica to stream (http/peer.ts). */
  runningFill(digest: string): BlobFill | undefined {
    return this.misses.runningFill(digest);
  }

  // ---------------------------------------------------------------- helpers

  private revalidation(key: string, fn: () => Promise<ManifestAnswer>): Revalidation {
    const existing = this.revalidations.get(key);
    if (existing) return existing;
    const answer = fn().finally(() => this.revalidations.delete(key));
    answer.catch(() => undefined);
    const flight = { answer, startedAt: this.now() };
    this.revalidations.set(key, flight);
    return flight;
  }

  private singleFlight(key: string, fn: () => Promise<ManifestAnswer>): Promise<ManifestAnswer> {
    const existing = this.inflight.get(key);
    if (existing) return existing.then((a) => answerOf(a, a.outcome === 'miss' ? 'joined' : a.outcome, a.warning));
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    p.catch(() => undefined);
    return p;
  }

  private async checkNegative(route: Route, reference: string): Promise<void> {
    if (await this.deps.metadata.isNegative(route.upstream.config.name, route.remoteRepo, reference, this.now())) {
      throw manifestUnknown(reference);
    }
  }

  private rememberMissing(w: MetadataWriter, route: Route, reference: string): void {
    const ttl = route.upstream.config.negativeTtlMs;
    if (ttl > 0) w.setNegative(route.upstream.config.name, route.remoteRepo, reference, this.now() + ttl);
  }

  /** Calls the upstream, turning its failures into the client-facing RegistryError. */
  private async callUpstream(route: Route, call: () => Promise<UpstreamResponse>): Promise<UpstreamResponse> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof UpstreamError) throw toRegistryError(err);
      throw err;
    }
  }
}

/** The client's Accept plus every manifest type, so an index is never narrowed to one platform. */
export function acceptFor(clientAccept: string[]): string[] {
  const out = new Set<string>();
  for (const a of clientAccept) {
    const t = bareMediaType(a);
    if (t && t !== '*/*' && t.includes('/')) out.add(t);
  }
  for (const t of ALL_MANIFEST_TYPES) out.add(t);
  return [...out];
}

async function readBody(res: UpstreamResponse, limit: number): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      res.body.destroy();
      throw new RegistryError('UNAVAILABLE', 'upstream manifest is too big', { status: 502 });
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts, total);
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  if (ms <= 0) return Promise.reject(new RegistryError('UNAVAILABLE', 'upstream revalidation is overdue', { status: 504 }));
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RegistryError('UNAVAILABLE', `upstream did not answer within ${ms} ms`, { status: 504 })), ms);
    p.then((v) => { clearTimeout(timer); resolve(v); }, (e: unknown) => { clearTimeout(timer); reject(e); });
  });
}

function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
