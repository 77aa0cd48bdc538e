/**
 * BrowseIndex over the SQLite index (better-sqlite3). Lists of digests or names travel as one
 * JSON parameter read with json_each (PostgreSQL: `= ANY($1)`), so every statement is prepared
 * once. Name filters use LIKE with an escape character: repository names contain `_`.
 */
import type Database from 'better-sqlite3';
import type {
  BrowseIndex, ManifestRecord, NameFilter, PullRecord, RefRecord, ReferrerInfo, RepositorySummary, TagPointer, TagRecord,
  TrafficPoint, UsageBatch, UsageTotals,
} from './browse.js';

const likeEscape = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);
const IN = 'IN (SELECT value FROM json_each(?))';

interface TagRow {
  tag: string; digest: string; updated_at: number; media_type: string | null; origin: string | null;
  upstream: string | null; pulls: number; last_pulled: number;
}
interface ManifestRow { media_type: string | null; size: number | null; origin: string; upstream: string | null; added_at: number; pulls: number; last_pulled: number }
interface TrafficRow { at: number; requests: number; hits: number; misses: number; local_bytes: number; cache_bytes: number; fetched_bytes: number }

export class SqliteBrowseIndex implements BrowseIndex {
  private readonly stmts;
  private readonly filtered = new Map<string, { names: Database.Statement; count: Database.Statement }>();

  constructor(private readonly db: Database.Database) {
    this.stmts = {
      existing: db.prepare<[string], { name: string; local: number }>(`SELECT r.name, EXISTS (SELECT 1 FROM local_repositories l WHERE l.name = r.name) AS local
        FROM repositories r WHERE r.name ${IN}`),
      tagCounts: db.prepare<[string], { repo: string; n: number }>(`SELECT repo, COUNT(*) AS n FROM tags WHERE repo ${IN} GROUP BY repo`),
      manifestCounts: db.prepare<[string], { repo: string; n: number }>(`SELECT repo, COUNT(*) AS n FROM repo_manifests WHERE repo ${IN} GROUP BY repo`),
      // A repository's manifests and what they reference (children are manifests of the repository too).
      repoBytes: db.prepare<[string, string], { repo: string; bytes: number }>(`SELECT x.repo, SUM(b.size) AS bytes FROM (
          SELECT m.repo, m.digest AS d FROM repo_manifests m WHERE m.repo ${IN}
          UNION SELECT m.repo, r.ref FROM repo_manifests m JOIN manifest_refs r ON r.manifest = m.digest AND r.kind <> 'subject' WHERE m.repo ${IN}
        ) x JOIN blobs b ON b.digest = x.d GROUP BY x.repo`),
      repoPulls: db.prepare<[string], { repo: string; pulls: number; last: number }>(`SELECT repo, SUM(pulls) AS pulls, MAX(last_pulled) AS last
        FROM pull_counts WHERE repo ${IN} GROUP BY repo`),
      tags: db.prepare<[string, string, number], TagRow>(`SELECT t.tag, t.digest, t.updated_at, mt.media_type, rm.origin, b.upstream,
          COALESCE(p.pulls, 0) AS pulls, COALESCE(p.last_pulled, 0) AS last_pulled
        FROM tags t LEFT JOIN manifest_types mt ON mt.digest = t.digest
        LEFT JOIN repo_manifests rm ON rm.repo = t.repo AND rm.digest = t.digest
        LEFT JOIN blobs b ON b.digest = t.digest
        LEFT JOIN pull_counts p ON p.repo = t.repo AND p.digest = t.digest
        WHERE t.repo = ? AND t.tag > ? ORDER BY t.tag LIMIT ?`),
      tagPointers: db.prepare<[string, string, string, number], TagPointer>(`SELECT repo, tag, digest FROM tags
        WHERE repo > ? OR (repo = ? AND tag > ?) ORDER BY repo, tag LIMIT ?`),
      tagsOf: db.prepare<[string, string], string>('SELECT tag FROM tags WHERE repo = ? AND digest = ? ORDER BY tag').pluck(),
      manifest: db.prepare<[string, string], ManifestRow>(`SELECT mt.media_type, b.size, m.origin, b.upstream, m.added_at,
          COALESCE(p.pulls, 0) AS pulls, COALESCE(p.last_pulled, 0) AS last_pulled
        FROM repo_manifests m LEFT JOIN manifest_types mt ON mt.digest = m.digest LEFT JOIN blobs b ON b.digest = m.digest
        LEFT JOIN pull_counts p ON p.repo = m.repo AND p.digest = m.digest
        WHERE m.repo = ? AND m.digest = ?`),
      refs: db.prepare<[string], RefRecord>(`SELECT manifest, ref, kind FROM manifest_refs WHERE manifest ${IN} ORDER BY manifest, kind, ref`),
      sizes: db.prepare<[string], { digest: string; size: number }>(`SELECT digest, size FROM blobs WHERE digest ${IN}`),
      referrers: db.prepare<[string, string], { subject: string; digest: string; media_type: string; artifact_type: string | null; size: number; annotations: string | null }>(
        `SELECT subject, digest, media_type, artifact_type, size, annotations FROM referrers WHERE repo = ? AND subject ${IN} ORDER BY artifact_type, digest`),
      platforms: db.prepare<[string], { digest: string; platforms: string }>(`SELECT digest, platforms FROM manifest_platforms WHERE digest ${IN}`),
      setPlatforms: db.prepare('INSERT INTO manifest_platforms (digest, platforms) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING'),
      mostPulled: db.prepare<[number], { repo: string; digest: string; pulls: number; last_pulled: number }>(`SELECT p.repo, p.digest, p.pulls, p.last_pulled
        FROM pull_counts p JOIN repo_manifests m ON m.repo = p.repo AND m.digest = p.digest ORDER BY p.pulls DESC, p.last_pulled DESC LIMIT ?`),
      usage: db.prepare<[], UsageTotals>('SELECT origin, upstream, COUNT(*) AS blobs, COALESCE(SUM(size), 0) AS bytes FROM blobs GROUP BY origin, upstream ORDER BY origin, upstream'),
      // CAST: better-sqlite3 binds a JS number as REAL, which would make this division exact.
      traffic: db.prepare<[number, number, number, number], TrafficRow>(`SELECT (minute / CAST(? AS INTEGER)) * CAST(? AS INTEGER) AS at, SUM(requests) AS requests, SUM(hits) AS hits,
          SUM(misses) AS misses, SUM(local_bytes) AS local_bytes, SUM(cache_bytes) AS cache_bytes, SUM(fetched_bytes) AS fetched_bytes
        FROM traffic WHERE minute >= ? GROUP BY minute / CAST(? AS INTEGER) ORDER BY at`),
      addPulls: db.prepare(`INSERT INTO pull_counts (repo, digest, pulls, last_pulled) VALUES (?, ?, ?, ?)
        ON CONFLICT (repo, digest) DO UPDATE SET pulls = pull_counts.pulls + excluded.pulls,
          last_pulled = MAX(pull_counts.last_pulled, excluded.last_pulled)`),
      addTraffic: db.prepare(`INSERT INTO traffic (minute, requests, hits, misses, local_bytes, cache_bytes, fetched_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (minute) DO UPDATE SET requests = traffic.requests + excluded.requests, hits = traffic.hits + excluded.hits,
          misses = traffic.misses + excluded.misses, local_bytes = traffic.local_bytes + excluded.local_bytes,
          cache_bytes = traffic.cache_bytes + excluded.cache_bytes, fetched_bytes = traffic.fetched_bytes + excluded.fetched_bytes`),
      pruneTraffic: db.prepare('DELETE FROM traffic WHERE minute < ?'),
    };
  }

  /** The statements for one shape of filter (which parts are set, how many prefixes are left out). */
  private filterStatements(filter: NameFilter) {
    const not = filter.notPrefixes?.length ?? 0;
    const key = `${filter.prefix !== undefined}/${not}/${filter.search !== undefined}`;
    let s = this.filtered.get(key);
    if (!s) {
      const where = [
        ...(filter.prefix !== undefined ? ["name LIKE ? ESCAPE '\\'"] : []),
        ...Array.from({ length: not }, () => "name NOT LIKE ? ESCAPE '\\'"),
        ...(filter.search !== undefined ? ["name LIKE ? ESCAPE '\\'"] : []),
      ];
      const clause = where.length > 0 ? ` AND ${where.join(' AND ')}` : '';
      s = {
        names: this.db.prepare(`SELECT name FROM repositories WHERE name > ?${clause} ORDER BY name LIMIT ?`).pluck(),
        count: this.db.prepare(`SELECT COUNT(*) FROM repositories WHERE 1 = 1${clause}`).pluck(),
      };
      this.filtered.set(key, s);
    }
    return s;
  }

  private filterParams(filter: NameFilter): string[] {
    return [
      ...(filter.prefix !== undefined ? [`${likeEscape(filter.prefix)}%`] : []),
      ...(filter.notPrefixes ?? []).map((p) => `${likeEscape(p)}%`),
      ...(filter.search !== undefined ? [`%${likeEscape(filter.search.toLowerCase())}%`] : []),
    ];
  }

  async repositoryNames(filter: NameFilter, after: string, limit: number): Promise<string[]> {
    return this.filterStatements(filter).names.all(after, ...this.filterParams(filter), limit) as string[];
  }

  async countRepositories(filter: NameFilter): Promise<number> {
    return this.filterStatements(filter).count.get(...this.filterParams(filter)) as number;
  }

  async repositorySummaries(names: readonly string[]): Promise<RepositorySummary[]> {
    if (names.length === 0) return [];
    const list = JSON.stringify(names);
    const counts = (rows: Array<{ repo: string; n: number }>) => new Map(rows.map((r) => [r.repo, r.n]));
    const existing = new Map(this.stmts.existing.all(list).map((r) => [r.name, r.local === 1]));
    const tags = counts(this.stmts.tagCounts.all(list));
    const manifests = counts(this.stmts.manifestCounts.all(list));
    const bytes = new Map(this.stmts.repoBytes.all(list, list).map((r) => [r.repo, r.bytes]));
    const pulls = new Map(this.stmts.repoPulls.all(list).map((r) => [r.repo, r]));
    return names.filter((n) => existing.has(n)).map((name) => ({
      name, local: existing.get(name)!, tags: tags.get(name) ?? 0, manifests: manifests.get(name) ?? 0, bytes: bytes.get(name) ?? 0,
      pulls: pulls.get(name)?.pulls ?? 0, lastPulled: pulls.get(name)?.last ?? 0,
    }));
  }

  async tags(repo: string, after: string, limit: number): Promise<TagRecord[]> {
    return this.stmts.tags.all(repo, after, limit).map((r) => ({
      tag: r.tag, digest: r.digest, updatedAt: r.updated_at, mediaType: r.media_type ?? undefined, origin: r.origin ?? undefined,
      upstream: r.upstream ?? undefined, pulls: r.pulls, lastPulled: r.last_pulled,
    }));
  }

  async tagPointers(after: { repo: string; tag: string } | undefined, limit: number): Promise<TagPointer[]> {
    return this.stmts.tagPointers.all(after?.repo ?? '', after?.repo ?? '', after?.tag ?? '', limit);
  }

  async tagsOf(repo: string, digest: string): Promise<string[]> { return this.stmts.tagsOf.all(repo, digest); }

  async manifest(repo: string, digest: string): Promise<ManifestRecord | undefined> {
    const r = this.stmts.manifest.get(repo, digest);
    return r && {
      digest, mediaType: r.media_type ?? undefined, size: r.size ?? undefined, origin: r.origin, upstream: r.upstream ?? undefined,
      addedAt: r.added_at, pulls: r.pulls, lastPulled: r.last_pulled,
    };
  }

  async refsOf(manifests: readonly string[]): Promise<RefRecord[]> {
    return manifests.length === 0 ? [] : this.stmts.refs.all(JSON.stringify(manifests));
  }

  async blobSizes(digests: readonly string[]): Promise<Map<string, number>> {
    if (digests.length === 0) return new Map();
    return new Map(this.stmts.sizes.all(JSON.stringify(digests)).map((r) => [r.digest, r.size]));
  }

  async referrers(repo: string, subjects: readonly string[]): Promise<ReferrerInfo[]> {
    if (subjects.length === 0) return [];
    return this.stmts.referrers.all(repo, JSON.stringify(subjects)).map((r) => ({
      subject: r.subject, digest: r.digest, mediaType: r.media_type, artifactType: r.artifact_type ?? undefined, size: r.size,
      annotations: r.annotations ? JSON.parse(r.annotations) as Record<string, string> : undefined,
    }));
  }

  async platforms(digests: readonly string[]): Promise<Map<string, string[]>> {
    if (digests.length === 0) return new Map();
    return new Map(this.stmts.platforms.all(JSON.stringify(digests)).map((r) => [r.digest, JSON.parse(r.platforms) as string[]]));
  }

  async setPlatforms(digest: string, platforms: readonly string[]): Promise<void> {
    this.stmts.setPlatforms.run(digest, JSON.stringify(platforms));
  }

  async mostPulled(limit: number): Promise<PullRecord[]> {
    return this.stmts.mostPulled.all(limit).map((r) => ({ repo: r.repo, digest: r.digest, pulls: r.pulls, lastPulled: r.last_pulled }));
  }

  async usage(): Promise<UsageTotals[]> { return this.stmts.usage.all(); }

  async traffic(since: number, bucketMs: number): Promise<TrafficPoint[]> {
    return this.stmts.traffic.all(bucketMs, bucketMs, since, bucketMs).map((r) => ({
      at: r.at, requests: r.requests, hits: r.hits, misses: r.misses, localBytes: r.local_bytes, cacheBytes: r.cache_bytes, fetchedBytes: r.fetched_bytes,
    }));
  }

  async addUsage(batch: UsageBatch): Promise<void> {
    this.db.transaction(() => {
      for (const p of batch.pulls) this.stmts.addPulls.run(p.repo, p.digest, p.count, p.last);
      for (const t of batch.traffic) this.stmts.addTraffic.run(t.at, t.requests, t.hits, t.misses, t.localBytes, t.cacheBytes, t.fetchedBytes);
    })();
  }

  async pruneTraffic(before: number): Promise<number> { return this.stmts.pruneTraffic.run(before).changes; }
}
