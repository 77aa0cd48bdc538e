/**
 * The PostgreSQL adapter of the metadata port: one database shared by every replica. Writes are
 * pipelined in one transaction per batch and announce their changes (listener.ts); reads go to the
 * database, except the upstream tag cache, which the pull-through path reads on every request by
 * tag and which is kept here, in memory, exact through the change feed.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Sql } from 'postgres';
import { BatchRecorder, type OpTable } from '../batch.js';
import { PendingUse } from '../pending-use.js';
import { TagCacheMemo } from '../tag-cache-memo.js';
import type {
  BlobRecord, LeaseStore, ManifestRef, MetadataIndex, MetadataWriter, OutboxRow, OutboxStore, ReferrerRow, TagCacheRow,
  TagRow, UploadRow, UsageRow,
} from '../port.js';
import { connect, describeTarget, guard, type PgOptions } from './connect.js';
import { CHANNEL, PgChangeFeed } from './listener.js';
import { migrate } from './migrate.js';
import { PG_OPS, type PgBatch } from './ops.js';
import type { BrowseIndex } from '../browse.js';
import { PostgresBrowseIndex } from './browse.js';

type Table = Record<string, (ctx: PgBatch, ...args: unknown[]) => void>;

export class PostgresIndex implements MetadataIndex {
  readonly kind = 'postgres' as const;
  readonly location: string;
  readonly changes: PgChangeFeed;
  readonly outbox: OutboxStore;
  readonly leases: LeaseStore;
  readonly browse: BrowseIndex;
  private readonly pending = new PendingUse();
  private readonly tagCacheRows: TagCacheMemo;

  private constructor(readonly sql: Sql, options: PgOptions, origin: string, log: Logger) {
    this.location = describeTarget(options);
    this.changes = new PgChangeFeed(sql, origin, log);
    this.browse = new PostgresBrowseIndex(sql);
    this.tagCacheRows = new TagCacheMemo(this.changes);
    this.outbox = {
      peek: (endpoint, limit) => guard(sql<OutboxRow[]>`SELECT id, event FROM notify_outbox WHERE endpoint = ${endpoint} ORDER BY id LIMIT ${limit}`),
      remove: async (endpoint, ids) => ids.length === 0 ? 0
        : (await guard(sql`DELETE FROM notify_outbox WHERE endpoint = ${endpoint} AND id = ANY(${sql.array([...ids])}::bigint[])`)).count,
      count: async (endpoint) => (await guard(sql<Array<{ n: number }>>`SELECT count(*) AS n FROM notify_outbox WHERE endpoint = ${endpoint}`))[0]!.n,
      dropOldest: async (endpoint, n) => (await guard(sql`DELETE FROM notify_outbox WHERE id IN
        (SELECT id FROM notify_outbox WHERE endpoint = ${endpoint} ORDER BY id LIMIT ${n})`)).count,
      endpoints: async () => (await guard(sql<Array<{ endpoint: string }>>`SELECT DISTINCT endpoint FROM notify_outbox`)).map((r) => r.endpoint),
      clear: async (endpoint) => (await guard(sql`DELETE FROM notify_outbox WHERE endpoint = ${endpoint}`)).count,
    };
    this.leases = {
      // The database's clock decides expiry. Taken when free, expired, or already ours (a renewal).
      acquire: async (name, holder, ttlMs) => (await guard(sql`INSERT INTO leases (name, holder, expires_at)
        VALUES (${name}, ${holder}, now() + ${ttlMs} * interval '1 millisecond')
        ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE leases.holder = excluded.holder OR leases.expires_at < now() RETURNING 1`)).length > 0,
      release: async (name, holder) => { await guard(sql`DELETE FROM leases WHERE name = ${name} AND holder = ${holder}`); },
      holder: async (name) => (await guard(sql<Array<{ holder: string }>>`SELECT holder FROM leases WHERE name = ${name} AND expires_at >= now()`))[0]?.holder,
    };
  }

  /**
   * Connects, applies pending migrations (once across replicas: migrate.ts) and starts listening.
   * `origin` names this process in change announcements.
   */
  static async open(options: PgOptions, origin: string, log: Logger): Promise<PostgresIndex> {
    const sql = connect(options);
    try {
      const applied = await guard(migrate(sql, options.schema));
      if (applied.length > 0) log.info({ applied, database: describeTarget(options) }, 'database migrations applied');
      const index = new PostgresIndex(sql, options, origin, log);
      await guard(index.changes.start());
      return index;
    } catch (err) {
      await sql.end({ timeout: 1 }).catch(() => undefined);
      throw err;
    }
  }

  async write(record: (w: MetadataWriter) => void): Promise<void> {
    const batch = new BatchRecorder();
    record(batch);
    const changes = batch.changeList();
    if (batch.ops.length === 0 && changes.length === 0) return;
    const note = changes.length > 0 ? this.changes.announce(changes) : undefined;
    const table = PG_OPS as OpTable<PgBatch> as Table;
    try {
      await guard(this.sql.begin((tx) => {
        const ctx: PgBatch = { tx, queries: [] };
        for (const { op, args } of batch.ops) table[op]!(ctx, ...args);
        if (note) ctx.queries.push(tx`SELECT pg_notify(${CHANNEL}, ${note.payload})`);
        return ctx.queries;
      }));
    } catch (err) {
      note?.cancel();
      throw err;
    }
    // Committed: a newcomer may be welcomed now, and the wait for acknowledgements begins.
    const acknowledged = note?.settled();
    // This replica's caches at once (its next request must see the write, feed or no feed) ...
    for (const c of changes) this.changes.publish(c);
    // ... and every other replica's before the client hears back.
    await acknowledged;
  }

  private q<T extends readonly object[]>(work: Promise<T>): Promise<T> { return guard(work); }

  async getMeta(key: string): Promise<string | undefined> {
    return (await this.q(this.sql<Array<{ value: string }>>`SELECT value FROM meta WHERE key = ${key}`))[0]?.value;
  }

  async sharedSecret(name: string): Promise<Buffer> {
    const key = `secret:${name}`;
    await this.q(this.sql`INSERT INTO meta (key, value) VALUES (${key}, ${randomBytes(32).toString('hex')}) ON CONFLICT DO NOTHING`);
    return Buffer.from((await this.getMeta(key))!, 'hex');
  }

  async catalog(last: string, limit: number): Promise<string[]> {
    return (await this.q(this.sql<Array<{ name: string }>>`SELECT name FROM repositories WHERE name > ${last} ORDER BY name LIMIT ${limit}`)).map((r) => r.name);
  }
  async hasRepository(repo: string): Promise<boolean> {
    return (await this.q(this.sql`SELECT 1 FROM repositories WHERE name = ${repo}`)).length > 0;
  }
  async listTags(repo: string, last: string, limit: number): Promise<string[]> {
    return (await this.q(this.sql<Array<{ tag: string }>>`SELECT tag FROM tags WHERE repo = ${repo} AND tag > ${last} ORDER BY tag LIMIT ${limit}`)).map((r) => r.tag);
  }
  async tagsOf(repo: string): Promise<TagRow[]> {
    return [...await this.q(this.sql<TagRow[]>`SELECT tag, digest FROM tags WHERE repo = ${repo}`)];
  }
  async deleteTagsOf(repo: string, digest: string): Promise<string[]> {
    const rows = await this.q(this.sql<Array<{ tag: string }>>`DELETE FROM tags WHERE repo = ${repo} AND digest = ${digest} RETURNING tag`);
    const tags = rows.map((r) => r.tag);
    if (tags.length > 0) await this.write((w) => { for (const tag of tags) w.changed({ kind: 'tag', repo, tag }); });
    return tags;
  }
  async manifestType(digest: string): Promise<string | undefined> {
    return (await this.q(this.sql<Array<{ media_type: string }>>`SELECT media_type FROM manifest_types WHERE digest = ${digest}`))[0]?.media_type;
  }
  async listReferrers(repo: string, subject: string): Promise<ReferrerRow[]> {
    return [...await this.q(this.sql<ReferrerRow[]>`SELECT digest, media_type, artifact_type, size, annotations FROM referrers
      WHERE repo = ${repo} AND subject = ${subject} ORDER BY digest`)];
  }
  async referrerDigests(repo: string, subject: string): Promise<string[]> {
    return (await this.q(this.sql<Array<{ digest: string }>>`SELECT digest FROM referrers WHERE repo = ${repo} AND subject = ${subject}`)).map((r) => r.digest);
  }

  async blobRecord(digest: string): Promise<BlobRecord | undefined> {
    const r = (await this.q(this.sql<Array<{ size: number; origin: string; upstream: string | null; last_access: number }>>`
      SELECT size, origin, upstream, last_access FROM blobs WHERE digest = ${digest}`))[0];
    return r ? { size: r.size, origin: r.origin, upstream: r.upstream, lastAccess: r.last_access } : undefined;
  }
  async expiredCachedBlobs(upstream: string, before: number): Promise<string[]> {
    return (await this.q(this.sql<Array<{ digest: string }>>`SELECT digest FROM blobs
      WHERE origin = 'cached' AND upstream = ${upstream} AND last_access < ${before}`)).map((r) => r.digest);
  }
  async usage(): Promise<UsageRow[]> {
    return [...await this.q(this.sql<UsageRow[]>`SELECT origin, upstream, count(*) AS blobs, COALESCE(sum(size), 0)::bigint AS bytes
      FROM blobs GROUP BY origin, upstream ORDER BY origin, upstream`)];
  }
  async cachedBytes(): Promise<number> {
    return (await this.q(this.sql<Array<{ n: number }>>`SELECT COALESCE(sum(size), 0)::bigint AS n FROM blobs WHERE origin = 'cached'`))[0]!.n;
  }

  touchBlob(digest: string): void { this.pending.touch(digest); }
  async markUsed(digests: readonly string[]): Promise<void> {
    if (digests.length === 0) return;
    const now = Date.now();
    await this.q(this.sql`UPDATE blobs SET last_access = ${now} WHERE digest = ANY(${this.sql.array([...digests])}::text[]) AND last_access < ${now}`);
  }
  async flushAccessTimes(): Promise<number> {
    const entries = this.pending.takeAccess();
    if (entries.length === 0) return 0;
    await this.q(this.sql`UPDATE blobs b SET last_access = v.t
      FROM (SELECT unnest(${this.sql.array(entries.map(([d]) => d))}::text[]) AS d, unnest(${this.sql.array(entries.map(([, t]) => String(t)))}::bigint[]) AS t) v
      WHERE b.digest = v.d AND b.last_access < v.t`);
    return entries.length;
  }
  async manifestsAccessedSince(since: number): Promise<string[]> {
    return (await this.q(this.sql<Array<{ digest: string }>>`SELECT b.digest FROM blobs b JOIN manifest_types m ON m.digest = b.digest
      WHERE b.last_access >= ${since}`)).map((r) => r.digest);
  }

  async uploadsStartedBefore(time: number): Promise<UploadRow[]> {
    return [...await this.q(this.sql<UploadRow[]>`SELECT uuid, repo, started_at FROM uploads WHERE started_at < ${time}`)];
  }

  async tagCache(upstream: string, repo: string, tag: string): Promise<TagCacheRow | undefined> {
    return this.tagCacheRows.read(upstream, repo, tag, async () => (await this.q(this.sql<TagCacheRow[]>`SELECT digest, media_type, checked_at
      FROM tag_cache WHERE upstream = ${upstream} AND repo = ${repo} AND tag = ${tag}`))[0]);
  }
  async isNegative(upstream: string, repo: string, reference: string, now: number): Promise<boolean> {
    const row = (await this.q(this.sql<Array<{ expires_at: number }>>`SELECT expires_at FROM negative_cache
      WHERE upstream = ${upstream} AND repo = ${repo} AND reference = ${reference}`))[0];
    if (!row) return false;
    if (row.expires_at > now) return true;
    await this.q(this.sql`DELETE FROM negative_cache WHERE upstream = ${upstream} AND repo = ${repo} AND reference = ${reference} AND expires_at <= ${now}`);
    return false;
  }

  async manifestRefs(manifest: string): Promise<ManifestRef[]> {
    return [...await this.q(this.sql<ManifestRef[]>`SELECT ref AS digest, kind FROM manifest_refs WHERE manifest = ${manifest} ORDER BY ref`)];
  }
  async isReferencedIn(repo: string, digest: string): Promise<boolean> {
    return (await this.q(this.sql`SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest
      WHERE r.ref = ${digest} AND m.repo = ${repo} LIMIT 1`)).length > 0;
  }
  async markLocal(repo: string): Promise<boolean> {
    const rows = await this.q(this.sql`INSERT INTO local_repositories (name, since) VALUES (${repo}, ${Date.now()}) ON CONFLICT DO NOTHING RETURNING 1`);
    if (rows.length === 0) return false;
    await this.write((w) => w.changed({ kind: 'local', repo }));
    return true;
  }
  async isLocal(repo: string): Promise<boolean> {
    return (await this.q(this.sql`SELECT 1 FROM local_repositories WHERE name = ${repo}`)).length > 0;
  }
  async localRepositoryNames(): Promise<string[]> {
    return (await this.q(this.sql<Array<{ name: string }>>`SELECT name FROM local_repositories ORDER BY name`)).map((r) => r.name);
  }
  async repositoryManifests(repo: string): Promise<Array<{ digest: string; origin: string }>> {
    return [...await this.q(this.sql<Array<{ digest: string; origin: string }>>`SELECT digest, origin FROM repo_manifests WHERE repo = ${repo}`)];
  }

  async unreferencedBlobs(before: number, limit: number): Promise<Array<{ digest: string; size: number; origin: string }>> {
    return [...await this.q(this.sql<Array<{ digest: string; size: number; origin: string }>>`SELECT digest, size, origin FROM blobs b
      WHERE last_access < ${before} AND NOT EXISTS (SELECT 1 FROM repo_manifests m WHERE m.digest = b.digest)
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest WHERE r.ref = b.digest) LIMIT ${limit}`)];
  }
  async isHeldOrReferenced(digest: string): Promise<boolean> {
    return (await this.q(this.sql`SELECT 1 FROM repo_manifests WHERE digest = ${digest}
      UNION ALL SELECT 1 FROM manifest_refs r JOIN repo_manifests m ON m.digest = r.manifest WHERE r.ref = ${digest} LIMIT 1`)).length > 0;
  }
  async deleteBlobIfIdle(digest: string, notAfter: number): Promise<boolean> {
    const rows = await this.q(this.sql`DELETE FROM blobs WHERE digest = ${digest} AND last_access <= ${notAfter} RETURNING 1`);
    if (rows.length === 0) return false;
    await this.write((w) => w.changed({ kind: 'blob', digest }));
    return true;
  }
  async cachedImages(): Promise<Array<{ repo: string; digest: string }>> {
    return [...await this.q(this.sql<Array<{ repo: string; digest: string }>>`SELECT m.repo, m.digest FROM repo_manifests m WHERE m.origin = 'cached'
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests p ON p.digest = r.manifest AND p.repo = m.repo
        WHERE r.ref = m.digest AND r.kind = 'manifest')
      AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN repo_manifests s ON s.digest = r.ref AND s.repo = m.repo
        WHERE r.manifest = m.digest AND r.kind = 'subject')`)];
  }

  noteRepositoryUse(repo: string, at: number): void { this.pending.useRepository(repo, at); }
  async flushRepositoryUse(): Promise<void> {
    const entries = this.pending.takeRepositoryUse();
    if (entries.length === 0) return;
    await this.q(this.sql`INSERT INTO repo_use (repo, last_use)
      SELECT * FROM unnest(${this.sql.array(entries.map(([r]) => r))}::text[], ${this.sql.array(entries.map(([, t]) => String(t)))}::bigint[])
      ON CONFLICT (repo) DO UPDATE SET last_use = GREATEST(repo_use.last_use, excluded.last_use)`);
  }
  async repositoryUsedSince(repo: string, since: number): Promise<boolean> {
    if (this.pending.repositoryUsedSince(repo, since)) return true;
    const row = (await this.q(this.sql<Array<{ last_use: number }>>`SELECT last_use FROM repo_use WHERE repo = ${repo}`))[0];
    return (row?.last_use ?? 0) > since;
  }

  async clearContentIndex(): Promise<void> {
    await this.q(this.sql.begin((tx) => [
      tx`DELETE FROM repositories`, tx`DELETE FROM tags`, tx`DELETE FROM referrers`, tx`DELETE FROM uploads`,
      tx`DELETE FROM repo_manifests`, tx`DELETE FROM manifest_refs`, tx`DELETE FROM local_repositories`,
    ]));
    await this.write((w) => w.changed({ kind: 'all' }));
  }

  async ping(): Promise<void> { await this.q(this.sql`SELECT 1`); }

  async close(): Promise<void> {
    await this.changes.stop();
    await Promise.allSettled([this.flushAccessTimes(), this.flushRepositoryUse()]);
    await this.sql.end({ timeout: 5 });
  }
}
