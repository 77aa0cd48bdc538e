/**
 * The metadata index as a port: what the registry, the cache, the lifecycle jobs and notify/ may
 * ask of it, with two adapters behind it: SQLite (sqlite.ts, the embedded default for one
 * process) and PostgreSQL (postgres/, shared by replicas). Nothing above metadata/ knows which one
 * it has. One shared suite (test/metadata/conformance.ts) runs against both.
 *
 * The index only holds what can be rebuilt from storage (`stowage reindex`) plus operational
 * state: upload sessions, access times, the upstream tag and negative caches, the notification
 * outbox, leases and the cluster's shared secrets.
 *
 * Writes go in batches (write()): the callback records what to change, synchronously, and the
 * adapter applies it all in one transaction. That keeps an event's outbox row in the commit of the
 * content it reports, and lets SQLite stay synchronous inside (better-sqlite3 transactions cannot
 * span an await) while PostgreSQL pipelines the statements on one connection.
 */
import type { BrowseIndex } from './browse.js';

export interface TagRow { tag: string; digest: string }
export interface ReferrerRow {
  digest: string; media_type: string; artifact_type: string | null; size: number; annotations: string | null;
}
export interface ReferrerRecord {
  repo: string; subject: string; digest: string; mediaType: string;
  artifactType?: string; size: number; annotations?: Record<string, string>;
}
export interface TagCacheRow { digest: string; media_type: string; checked_at: number }
export interface UsageRow { origin: string; upstream: string | null; blobs: number; bytes: number }
export interface UploadRow { uuid: string; repo: string; started_at: number }
export interface BlobRecord { size: number; origin: string; upstream: string | null; lastAccess: number }
/** What a manifest references (kind: config, layer, blob, subject or manifest, as oci/manifest.ts says). */
export interface ManifestRef { digest: string; kind: string }
export interface OutboxRow { id: number; event: string }
export type Origin = 'local' | 'cached';

/**
 * What changed, for the caches that replicas keep of the index and of storage links (a tag now
 * names another digest, a revision or blob went away, a name became local...). Adapters publish
 * these for every committed write; PostgreSQL delivers them to every replica (LISTEN/NOTIFY).
 */
export type Change =
  | { kind: 'tag'; repo: string; tag: string }
  | { kind: 'revision'; repo: string; digest: string }
  | { kind: 'blob'; digest: string }
  | { kind: 'link'; repo: string; digest: string }
  | { kind: 'local'; repo: string }
  | { kind: 'tagcache'; upstream: string; repo: string }
  | { kind: 'outbox'; endpoint: string }
  /** Changes may have been missed (a lost database connection): forget everything cached. */
  | { kind: 'all' };

export interface ChangeFeed {
  subscribe(listener: (change: Change) => void): () => void;
  /**
   * Bumped on every change received. A cache that reads something takes the generation first and
   * keeps the answer only if it is unchanged once the answer is in: a change that raced the read
   * is never papered over by the older answer.
   */
  readonly generation: number;
  /**
   * False while changes may be going unheard (the listener connection is down): caches must not
   * be trusted then, and callers read through. Always true for a single process.
   */
  readonly live: boolean;
}

/** What one write batch may change. Calls only record; write() applies them in one transaction. */
export interface MetadataWriter {
  setMeta(key: string, value: string): void;
  addRepository(name: string): void;
  setTag(repo: string, tag: string, digest: string): void;
  deleteTag(repo: string, tag: string): void;
  setManifestType(digest: string, mediaType: string): void;
  addReferrer(r: ReferrerRecord): void;
  deleteReferrer(repo: string, digest: string): void;
  /** A pushed blob stays local for good, even if an upstream's copy was cached first. */
  recordBlob(digest: string, size: number, origin: Origin, upstream?: string): void;
  deleteBlob(digest: string): void;
  addUpload(uuid: string, repo: string, startedAt: number): void;
  deleteUpload(uuid: string): void;
  setTagCache(upstream: string, repo: string, tag: string, digest: string, mediaType: string, checkedAt: number): void;
  /** A cached tag found in storage, as never checked (the next request revalidates it). */
  seedTagCache(upstream: string, repo: string, tag: string, digest: string, mediaType: string): void;
  deleteTagCache(upstream: string, repo: string, tag: string): void;
  deleteTagCacheOf(upstream: string, repo: string, digest: string): void;
  setNegative(upstream: string, repo: string, reference: string, expiresAt: number): void;
  clearNegative(upstream: string, repo: string, reference: string): void;
  /**
   * The reference index: `manifest` (stored bytes, global) references `refs`, and repo holds
   * manifest (a revision link) as pushed ('local') or cached content. Idempotent.
   */
  recordManifest(repo: string, manifest: string, origin: Origin, refs: readonly ManifestRef[]): void;
  /** repo no longer holds manifest (its revision link was deleted). */
  removeManifestFrom(repo: string, manifest: string): void;
  forgetManifestRefs(manifest: string): void;
  markLocal(repo: string): void;
  /** An event for an endpoint's outbox, committed with the content it reports. */
  addOutbox(endpoint: string, event: string): void;
  /** Tells every replica's caches about a change that only storage saw (a link file removed). */
  changed(change: Change): void;
}

export interface MetadataIndex {
  readonly kind: 'sqlite' | 'postgres';
  /** Where it lives, for log lines (a path, or host:port/dbname; never a password). */
  readonly location: string;
  readonly changes: ChangeFeed;

  /** Applies what `record` writes in one transaction; resolves once every replica can see it. */
  write(record: (w: MetadataWriter) => void): Promise<void>;

  getMeta(key: string): Promise<string | undefined>;
  /** A random secret shared by every process on this index, made on first use (token keys, peer auth). */
  sharedSecret(name: string): Promise<Buffer>;

  catalog(last: string, limit: number): Promise<string[]>;
  hasRepository(repo: string): Promise<boolean>;
  listTags(repo: string, last: string, limit: number): Promise<string[]>;
  tagsOf(repo: string): Promise<TagRow[]>;
  /** Removes every tag of repo pointing at digest; returns the removed tag names. */
  deleteTagsOf(repo: string, digest: string): Promise<string[]>;
  manifestType(digest: string): Promise<string | undefined>;
  listReferrers(repo: string, subject: string): Promise<ReferrerRow[]>;
  referrerDigests(repo: string, subject: string): Promise<string[]>;

  blobRecord(digest: string): Promise<BlobRecord | undefined>;
  /** Cached (never pushed) blobs of an upstream not read since `before`. */
  expiredCachedBlobs(upstream: string, before: number): Promise<string[]>;
  /** Blob count and bytes by origin (local, cached) and upstream. */
  usage(): Promise<UsageRow[]>;
  /** Bytes of cached (never pushed) content. */
  cachedBytes(): Promise<number>;

  /** Access times are batched: remembered here (no I/O) and written by flushAccessTimes(). */
  touchBlob(digest: string): void;
  /**
   * Records use now, not batched: what a manifest push does for everything it references before
   * checking it is there, so a concurrent sweep sees the use (lifecycle/sweep.ts).
   */
  markUsed(digests: readonly string[]): Promise<void>;
  flushAccessTimes(): Promise<number>;
  /** Manifests (by digest) read or stored since `since` (access times as last flushed). */
  manifestsAccessedSince(since: number): Promise<string[]>;

  uploadsStartedBefore(time: number): Promise<UploadRow[]>;

  tagCache(upstream: string, repo: string, tag: string): Promise<TagCacheRow | undefined>;
  /** Negative cache: an upstream 404 for a reference, remembered until its expiry. */
  isNegative(upstream: string, repo: string, reference: string, now: number): Promise<boolean>;

  manifestRefs(manifest: string): Promise<ManifestRef[]>;
  /** True when a manifest held by repo references digest (as config, layer, blob, subject or child). */
  isReferencedIn(repo: string, digest: string): Promise<boolean>;
  /** Marks repo as holding pushed content; true if it was not marked before. */
  markLocal(repo: string): Promise<boolean>;
  /** True once anything was pushed to repo (an upload started, a mount, a manifest). */
  isLocal(repo: string): Promise<boolean>;
  localRepositoryNames(): Promise<string[]>;
  repositoryManifests(repo: string): Promise<Array<{ digest: string; origin: string }>>;

  /** Blobs no manifest held by any repository references (nor is one), last used before `before`. */
  unreferencedBlobs(before: number, limit: number): Promise<Array<{ digest: string; size: number; origin: string }>>;
  /** True when a repository holds digest as a manifest, or a manifest it holds references digest. */
  isHeldOrReferenced(digest: string): Promise<boolean>;
  /** Deletes the blob's row unless it was recorded or used after `notAfter`; true if deleted. */
  deleteBlobIfIdle(digest: string, notAfter: number): Promise<boolean>;
  /** Cached manifests that are not a child (or a referrer) of another manifest of their repository: images. */
  cachedImages(): Promise<Array<{ repo: string; digest: string }>>;

  /**
   * Repositories read (pulled from) anywhere: replicas record reads in memory and flush them often
   * (noteRepositoryUse / flushRepositoryUse), so eviction on one replica sees a pull on another.
   */
  noteRepositoryUse(repo: string, at: number): void;
  flushRepositoryUse(): Promise<void>;
  repositoryUsedSince(repo: string, since: number): Promise<boolean>;

  readonly outbox: OutboxStore;
  readonly leases: LeaseStore;
  /** What the web page reads (browse.ts). */
  readonly browse: BrowseIndex;

  /** Drops everything that reindex rebuilds from storage (not operational state). */
  clearContentIndex(): Promise<void>;
  /** Is the index reachable right now (a cheap round trip)? Throws the database's error if not. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The notification outbox: events waiting for delivery, one row per event and endpoint. */
export interface OutboxStore {
  /** The oldest `limit` events of an endpoint, in id order. */
  peek(endpoint: string, limit: number): Promise<OutboxRow[]>;
  /** Removes exactly these events (a delivered batch). */
  remove(endpoint: string, ids: readonly number[]): Promise<number>;
  count(endpoint: string): Promise<number>;
  /** Removes an endpoint's n oldest events (the outbox is full); returns how many went. */
  dropOldest(endpoint: string, n: number): Promise<number>;
  /** Endpoints that have events waiting. */
  endpoints(): Promise<string[]>;
  clear(endpoint: string): Promise<number>;
}

/**
 * Named leases: one holder at a time, until it releases or stops renewing (the database's clock
 * decides expiry, so replicas' clocks need not agree). Cluster-wide duties (eviction, GC, upload
 * purging, notification delivery per endpoint) and cluster single-flight (a fill per digest) use them.
 */
export interface LeaseStore {
  /** Takes or renews `name` for `holder`; true if holder has it now. */
  acquire(name: string, holder: string, ttlMs: number): Promise<boolean>;
  release(name: string, holder: string): Promise<void>;
  /** The current holder, if the lease is held and not expired. */
  holder(name: string): Promise<string | undefined>;
}
