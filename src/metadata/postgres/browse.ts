/**
 * BrowseIndex (the web page's reads and usage writes) over the PostgreSQL index: the SQL of
 * browse-sqlite.ts with lists as arrays (`= ANY($1)`), ILIKE for search, GREATEST for maxima.
 */
import type { Sql } from 'postgres';
import type {
  BrowseIndex, ManifestRecord, NameFilter, PullRecord, RefRecord, ReferrerInfo, RepositorySummary, TagPointer, TagRecord,
  TrafficPoint, UsageBatch, UsageTotals,
} from '../browse.js';
import { guard } from './connect.js';

const likeEscape = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);

interface TrafficRow { at: number; requests: number; hits: number; misses: number; local_bytes: number; cache_bytes: number; fetched_bytes: number }

export class PostgresBrowseIndex implements BrowseIndex {
  constructor(private readonly sql: Sql) {}

  /** The WHERE conditions of a name filter, as fragments. */
  private filter(f: NameFilter) {
    const sql = this.sql;
    const parts = [
      ...(f.prefix !== undefined ? [sql`AND name LIKE ${`${likeEscape(f.prefix)}%`}`] : []),
      ...(f.notPrefixes ?? []).map((p) => sql`AND name NOT LIKE ${`${likeEscape(p)}%`}`),
      ...(f.search !== undefined ? [sql`AND name ILIKE ${`%${likeEscape(f.search)}%`}`] : []),
    ];
    return parts.reduce((acc, p) => sql`${acc} ${p}`, sql``);
  }

  async repositoryNames(f: NameFilter, after: string, limit: number): Promise<string[]> {
    const rows = await guard(this.sql<Array<{ name: string }>>`SELECT name FROM repositories WHERE name > ${after} ${this.filter(f)} ORDER BY name LIMIT ${limit}`);
    return rows.map((r) => r.name);
  }

  async countRepositories(f: NameFilter): Promise<number> {
    return (await guard(this.sql<Array<{ n: number }>>`SELECT count(*) AS n FROM repositories WHERE true ${this.filter(f)}`))[0]!.n;
  }

  async repositorySummaries(names: readonly string[]): Promise<RepositorySummary[]> {
    if (names.length === 0) return [];
    const sql = this.sql;
    const list = sql.array([...names]);
    const [existing, tags, manifests, bytes, pulls] = await guard(Promise.all([
      sql<Array<{ name: string; local: boolean }>>`SELECT r.name, EXISTS (SELECT 1 FROM local_repositories l WHERE l.name = r.name) AS local
        FROM repositories r WHERE r.name = ANY(${list}::text[])`,
      sql<Array<{ repo: string; n: number }>>`SELECT repo, count(*) AS n FROM tags WHERE repo = ANY(${list}::text[]) GROUP BY repo`,
      sql<Array<{ repo: string; n: number }>>`SELECT repo, count(*) AS n FROM repo_manifests WHERE repo = ANY(${list}::text[]) GROUP BY repo`,
      sql<Array<{ repo: string; bytes: number }>>`SELECT x.repo, sum(b.size)::bigint AS bytes FROM (
          SELECT m.repo, m.digest AS d FROM repo_manifests m WHERE m.repo = ANY(${list}::text[])
          UNION SELECT m.repo, r.ref FROM repo_manifests m JOIN manifest_refs r ON r.manifest = m.digest AND r.kind <> 'subject' WHERE m.repo = ANY(${list}::text[])
        ) x JOIN blobs b ON b.digest = x.d GROUP BY x.repo`,
      sql<Array<{ repo: string; pulls: number; last: number }>>`SELECT repo, sum(pulls)::bigint AS pulls, max(last_pulled) AS last
        FROM pull_counts WHERE repo = ANY(${list}::text[]) GROUP BY repo`,
    ]));
    const local = new Map(existing.map((r) => [r.name, r.local]));
    const count = (rows: Array<{ repo: string; n: number }>) => new Map(rows.map((r) => [r.repo, r.n]));
    const t = count(tags);
    const m = count(manifests);
    const b = new Map(bytes.map((r) => [r.repo, r.bytes]));
    const p = new Map(pulls.map((r) => [r.repo, r]));
    return names.filter((n) => local.has(n)).map((name) => ({
      name, local: local.get(name)!, tags: t.get(name) ?? 0, manifests: m.get(name) ?? 0, bytes: b.get(name) ?? 0,
      pulls: p.get(name)?.pulls ?? 0, lastPulled: p.get(name)?.last ?? 0,
    }));
  }

  async tags(repo: string, after: string, limit: number): Promise<TagRecord[]> {
    const rows = await guard(this.sql<Array<{
      tag: string; digest: string; updated_at: number; media_type: string | null; origin: string | null; upstream: string | null; pulls: number; last_pulled: number;
    }>>`SELECT t.tag, t.digest, t.updated_at, mt.media_type, rm.origin, b.upstream,
          COALESCE(p.pulls, 0) AS pulls, COALESCE(p.last_pulled, 0) AS last_pulled
        FROM tags t LEFT JOIN manifest_types mt ON mt.digest = t.digest
        LEFT JOIN repo_manifests rm ON rm.repo = t.repo AND rm.digest = t.digest
        LEFT JOIN blobs b ON b.digest = t.digest
        LEFT JOIN pull_counts p ON p.repo = t.repo AND p.digest = t.digest
        WHERE t.repo = ${repo} AND t.tag > ${after} ORDER BY t.tag LIMIT ${limit}`);
    return rows.map((r) => ({
      tag: r.tag, digest: r.digest, updatedAt: r.updated_at, mediaType: r.media_type ?? undefined, origin: r.origin ?? undefined,
      upstream: r.upstream ?? undefined, pulls: r.pulls, lastPulled: r.last_pulled,
    }));
  }

  async tagPointers(after: { repo: string; tag: string } | undefined, limit: number): Promise<TagPointer[]> {
    const repo = after?.repo ?? '';
    return [...await guard(this.sql<TagPointer[]>`SELECT repo, tag, digest FROM tags
      WHERE repo > ${repo} OR (repo = ${repo} AND tag > ${after?.tag ?? ''}) ORDER BY repo, tag LIMIT ${limit}`)];
  }

  async tagsOf(repo: string, digest: string): Promise<string[]> {
    return (await guard(this.sql<Array<{ tag: string }>>`SELECT tag FROM tags WHERE repo = ${repo} AND digest = ${digest} ORDER BY tag`)).map((r) => r.tag);
  }

  async manifest(repo: string, digest: string): Promise<ManifestRecord | undefined> {
    const r = (await guard(this.sql<Array<{ media_type: string | null; size: number | null; origin: string; upstream: string | null; added_at: number; pulls: number; last_pulled: number }>>`
      SELECT mt.media_type, b.size, m.origin, b.upstream, m.added_at, COALESCE(p.pulls, 0) AS pulls, COALESCE(p.last_pulled, 0) AS last_pulled
      FROM repo_manifests m LEFT JOIN manifest_types mt ON mt.digest = m.digest LEFT JOIN blobs b ON b.digest = m.digest
      LEFT JOIN pull_counts p ON p.repo = m.repo AND p.digest = m.digest
      WHERE m.repo = ${repo} AND m.digest = ${digest}`))[0];
    return r && {
      digest, mediaType: r.media_type ?? undefined, size: r.size ?? undefined, origin: r.origin, upstream: r.upstream ?? undefined,
      addedAt: r.added_at, pulls: r.pulls, lastPulled: r.last_pulled,
    };
  }

  async refsOf(manifests: readonly string[]): Promise<RefRecord[]> {
    if (manifests.length === 0) return [];
    return [...await guard(this.sql<RefRecord[]>`SELECT manifest, ref, kind FROM manifest_refs
      WHERE manifest = ANY(${this.sql.array([...manifests])}::text[]) ORDER BY manifest, kind, ref`)];
  }

  async blobSizes(digests: readonly string[]): Promise<Map<string, number>> {
    if (digests.length === 0) return new Map();
    const rows = await guard(this.sql<Array<{ digest: string; size: number }>>`SELECT digest, size FROM blobs WHERE digest = ANY(${this.sql.array([...digests])}::text[])`);
    return new Map(rows.map((r) => [r.digest, r.size]));
  }

  async referrers(repo: string, subjects: readonly string[]): Promise<ReferrerInfo[]> {
    if (subjects.length === 0) return [];
    const rows = await guard(this.sql<Array<{ subject: string; digest: string; media_type: string; artifact_type: string | null; size: number; annotations: string | null }>>`
      SELECT subject, digest, media_type, artifact_type, size, annotations FROM referrers
      WHERE repo = ${repo} AND subject = ANY(${this.sql.array([...subjects])}::text[]) ORDER BY artifact_type, digest`);
    return rows.map((r) => ({
      subject: r.subject, digest: r.digest, mediaType: r.media_type, artifactType: r.artifact_type ?? undefined, size: r.size,
      annotations: r.annotations ? JSON.parse(r.annotations) as Record<string, string> : undefined,
    }));
  }

  async platforms(digests: readonly string[]): Promise<Map<string, string[]>> {
    if (digests.length === 0) return new Map();
    const rows = await guard(this.sql<Array<{ digest: string; platforms: string }>>`SELECT digest, platforms FROM manifest_platforms
      WHERE digest = ANY(${this.sql.array([...digests])}::text[])`);
    return new Map(rows.map((r) => [r.digest, JSON.parse(r.platforms) as string[]]));
  }

  async setPlatforms(digest: string, platforms: readonly string[]): Promise<void> {
    await guard(this.sql`INSERT INTO manifest_platforms (digest, platforms) VALUES (${digest}, ${JSON.stringify(platforms)}) ON CONFLICT (digest) DO NOTHING`);
  }

  async mostPulled(limit: number): Promise<PullRecord[]> {
    const rows = await guard(this.sql<Array<{ repo: string; digest: string; pulls: number; last_pulled: number }>>`SELECT p.repo, p.digest, p.pulls, p.last_pulled
      FROM pull_counts p JOIN repo_manifests m ON m.repo = p.repo AND m.digest = p.digest ORDER BY p.pulls DESC, p.last_pulled DESC LIMIT ${limit}`);
    return rows.map((r) => ({ repo: r.repo, digest: r.digest, pulls: r.pulls, lastPulled: r.last_pulled }));
  }

  async usage(): Promise<UsageTotals[]> {
    return [...await guard(this.sql<UsageTotals[]>`SELECT origin, upstream, count(*) AS blobs, COALESCE(sum(size), 0)::bigint AS bytes
      FROM blobs GROUP BY origin, upstream ORDER BY origin, upstream`)];
  }

  async traffic(since: number, bucketMs: number): Promise<TrafficPoint[]> {
    const bucket = Math.max(1, Math.floor(bucketMs));
    const rows = await guard(this.sql<TrafficRow[]>`SELECT at, sum(requests)::bigint AS requests, sum(hits)::bigint AS hits,
        sum(misses)::bigint AS misses, sum(local_bytes)::bigint AS local_bytes, sum(cache_bytes)::bigint AS cache_bytes,
        sum(fetched_bytes)::bigint AS fetched_bytes
      FROM (SELECT (minute / ${bucket}::bigint) * ${bucket}::bigint AS at, * FROM traffic WHERE minute >= ${since}) t
      GROUP BY at ORDER BY at`);
    return rows.map((r) => ({
      at: r.at, requests: r.requests, hits: r.hits, misses: r.misses, localBytes: r.local_bytes, cacheBytes: r.cache_bytes, fetchedBytes: r.fetched_bytes,
    }));
  }

  async addUsage(batch: UsageBatch): Promise<void> {
    if (batch.pulls.length === 0 && batch.traffic.length === 0) return;
    await guard(this.sql.begin((tx) => [
      ...batch.pulls.map((p) => tx`INSERT INTO pull_counts (repo, digest, pulls, last_pulled) VALUES (${p.repo}, ${p.digest}, ${p.count}, ${p.last})
        ON CONFLICT (repo, digest) DO UPDATE SET pulls = pull_counts.pulls + excluded.pulls,
          last_pulled = GREATEST(pull_counts.last_pulled, excluded.last_pulled)`),
      ...batch.traffic.map((t) => tx`INSERT INTO traffic (minute, requests, hits, misses, local_bytes, cache_bytes, fetched_bytes)
        VALUES (${t.at}, ${t.requests}, ${t.hits}, ${t.misses}, ${t.localBytes}, ${t.cacheBytes}, ${t.fetchedBytes})
        ON CONFLICT (minute) DO UPDATE SET requests = traffic.requests + excluded.requests, hits = traffic.hits + excluded.hits,
          misses = traffic.misses + excluded.misses, local_bytes = traffic.local_bytes + excluded.local_bytes,
          cache_bytes = traffic.cache_bytes + excluded.cache_bytes, fetched_bytes = traffic.fetched_bytes + excluded.fetched_bytes`),
    ]));
  }

  async pruneTraffic(before: number): Promise<number> {
    return (await guard(this.sql`DELETE FROM traffic WHERE minute < ${before}`)).count;
  }
}
