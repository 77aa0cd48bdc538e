/**
 * What the web page (src/ui/) reads and writes in the metadata index, as one small async port so
 * that every adapter (SQLite here, PostgreSQL for replicas) answers it the same way. Reads only
 * touch the index, never storage. The only writes are the usage figures (pull counts, traffic per
 * minute) a replica batches in memory and adds to the shared tables every few seconds, and the
 * page's session key.
 *
 * Times are epoch milliseconds; sizes are bytes; digests are "algorithm:hex" strings.
 */

/** Which repository names a listing covers. Every field narrows; none means every repository. */
export interface NameFilter {
  /** Names starting with this (an upstream's cache repositories: "docker.io/"). */
  prefix?: string;
  /** Leaves out names starting with any of these (pushed repositories: not under any upstream's prefix). */
  notPrefixes?: readonly string[];
  /** Names containing this text, case-insensitively. */
  search?: string;
}

export interface RepositorySummary {
  name: string;
  /** True once anything was pushed to it (local_repositories). */
  local: boolean;
  tags: number;
  manifests: number;
  /** Stored bytes of every distinct blob its manifests are or reference (present blobs only). */
  bytes: number;
  pulls: number;
  /** 0 when never pulled (since the counts began). */
  lastPulled: number;
}

export interface TagRecord {
  tag: string;
  digest: string;
  updatedAt: number;
  /** The manifest's media type, when the index knows it. */
  mediaType: string | undefined;
  /** 'local' (pushed) or 'cached', from repo_manifests; undefined when the index has no row. */
  origin: string | undefined;
  /** The upstream the manifest was cached from (blobs.upstream). */
  upstream: string | undefined;
  pulls: number;
  lastPulled: number;
}

export interface ManifestRecord {
  digest: string;
  mediaType: string | undefined;
  /** Bytes of the manifest itself; undefined when it is not in the blobs table. */
  size: number | undefined;
  origin: string;
  upstream: string | undefined;
  addedAt: number;
  pulls: number;
  lastPulled: number;
}

/** One row of manifest_refs: `manifest` references `ref` as config, layer, blob, subject or manifest. */
export interface RefRecord { manifest: string; ref: string; kind: string }

export interface ReferrerInfo {
  subject: string;
  digest: string;
  mediaType: string;
  artifactType: string | undefined;
  size: number;
  annotations: Record<string, string> | undefined;
}

export interface PullRecord { repo: string; digest: string; pulls: number; lastPulled: number }

export interface TagPointer { repo: string; tag: string; digest: string }

export interface UsageTotals { origin: string; upstream: string | null; blobs: number; bytes: number }

/** Request figures for one time bucket (a minute as recorded; wider when read back). */
export interface TrafficPoint {
  /** Start of the bucket. */
  at: number;
  /** Manifest and blob GETs answered. */
  requests: number;
  /** Answered from the cache without fetching: hit, revalidated, stale, joined. */
  hits: number;
  /** Fetched from an upstream for this request. */
  misses: number;
  /** Body bytes served from pushed content. */
  localBytes: number;
  /** Body bytes served from cached content (hits). */
  cacheBytes: number;
  /** Bytes fetched from upstreams. */
  fetchedBytes: number;
}

/** What one replica counted since its last flush; added to the shared tables (never replacing them). */
export interface UsageBatch {
  pulls: Array<{ repo: string; digest: string; count: number; last: number }>;
  traffic: TrafficPoint[];
}

export interface BrowseIndex {
  /** Names matching the filter, in byte order, after `after` ('' for the first page). */
  repositoryNames(filter: NameFilter, after: string, limit: number): Promise<string[]>;
  countRepositories(filter: NameFilter): Promise<number>;
  /** Summaries of the named repositories that exist, in the order given. */
  repositorySummaries(names: readonly string[]): Promise<RepositorySummary[]>;
  /** A repository's tags in order, after `after`. */
  tags(repo: string, after: string, limit: number): Promise<TagRecord[]>;
  /** Every tag of every repository, in (repo, tag) order, after the given pair. */
  tagPointers(after: { repo: string; tag: string } | undefined, limit: number): Promise<TagPointer[]>;
  /** The tags of repo pointing at digest. */
  tagsOf(repo: string, digest: string): Promise<string[]>;
  /** The manifest as repo holds it; undefined when repo does not hold it. */
  manifest(repo: string, digest: string): Promise<ManifestRecord | undefined>;
  /** What the given manifests reference. */
  refsOf(manifests: readonly string[]): Promise<RefRecord[]>;
  /** Sizes of the given blobs that are stored (absent digests are left out). */
  blobSizes(digests: readonly string[]): Promise<Map<string, number>>;
  /** Referrers of the given subjects in repo. */
  referrers(repo: string, subjects: readonly string[]): Promise<ReferrerInfo[]>;
  /** Platforms ("linux/arm64/v8") remembered for the given manifests; absent ones were never recorded. */
  platforms(digests: readonly string[]): Promise<Map<string, string[]>>;
  /** Remembers a manifest's platforms (content-addressed, so never changed once written). */
  setPlatforms(digest: string, platforms: readonly string[]): Promise<void>;
  mostPulled(limit: number): Promise<PullRecord[]>;
  /** Blob count and bytes by origin and upstream. */
  usage(): Promise<UsageTotals[]>;
  /** Traffic since `since`, summed into buckets of bucketMs (aligned to multiples of it), oldest first. */
  traffic(since: number, bucketMs: number): Promise<TrafficPoint[]>;
  /** Adds a replica's counts to the shared tables, in one transaction. */
  addUsage(batch: UsageBatch): Promise<void>;
  /** Drops traffic rows older than `before`. */
  pruneTraffic(before: number): Promise<number>;
}
