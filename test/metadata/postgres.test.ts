/**
 * The metadata suite against the PostgreSQL adapter: a private PostgreSQL 15 (test/helpers/postgres.ts),
 * a fresh schema for each index opened, and a second connection pool on the same schema as another
 * replica. Also: migrations applied once when several replicas start at once.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import pino from 'pino';
import { PostgresIndex } from '../../src/metadata/postgres/index.js';
import { connect, type PgOptions } from '../../src/metadata/postgres/connect.js';
import { migrationStatus } from '../../src/metadata/postgres/migrate.js';
import { MIGRATIONS } from '../../src/metadata/postgres/schema.js';
import { missingPostgres, startPostgres } from '../helpers/postgres.js';
import { D, metadataConformance } from './conformance.js';
import { sleep, until } from '../helpers/tools.js';
import { browseSuite, seed } from '../ui/browse-suite.js';

const skip = missingPostgres();
if (skip) {
  t.pass(`skipped: ${skip}`);
  process.exit(0);
}
const log = pino({ level: 'silent' });
const pg = await startPostgres();
t.teardown(() => pg.destroy());
const url = await pg.createDatabase('meta');

const options = (schema: string): PgOptions => ({
  url, schema, sslmode: 'disable', connectTimeoutMs: 5000, statementTimeoutMs: 10_000,
  maxOpen: 4, maxIdleTimeMs: 0, maxLifetimeMs: 0,
});
const origin = () => randomBytes(4).toString('hex');

let schema = '';
metadataConformance(t, {
  name: 'postgres',
  open: async () => {
    schema = `t_${randomBytes(6).toString('hex')}`;
    return PostgresIndex.open(options(schema), origin(), log);
  },
  second: async () => PostgresIndex.open(options(schema), origin(), log),
});

t.test('migrations: five replicas starting at once apply each one once', async (t) => {
  const s = `m_${randomBytes(6).toString('hex')}`;
  const all = await Promise.all(Array.from({ length: 5 }, () => PostgresIndex.open(options(s), origin(), log)));
  t.teardown(() => Promise.all(all.map((m) => m.close())));
  const sql = connect(options(s));
  t.teardown(() => sql.end());
  const status = await migrationStatus(sql, s);
  t.equal(status.current, MIGRATIONS.length);
  t.same(status.applied.map((a) => a.version), MIGRATIONS.map((_m, i) => i + 1), 'one row per migration');
  t.same(status.pending, []);
});

t.test('the database gone: a clear 503, and back by itself', async (t) => {
  const m = await PostgresIndex.open(options(`d_${randomBytes(6).toString('hex')}`), origin(), log);
  t.teardown(() => m.close());
  await m.write((w) => w.setTag('r/a', 'v1', `sha256:${'a'.repeat(64)}`));
  await pg.stop();
  const err = await m.listTags('r/a', '', 10).then(() => undefined, (e: unknown) => e);
  t.match(err, { code: 'UNAVAILABLE', status: 503 }, 'a query fails as UNAVAILABLE');
  await t.rejects(m.ping(), { code: 'UNAVAILABLE' });
  await pg.start();
  let tags: string[] | undefined;
  for (let i = 0; i < 100 && !tags; i++) {
    tags = await m.listTags('r/a', '', 10).catch(() => undefined);
    if (!tags) await new Promise((r) => setTimeout(r, 100));
  }
  t.same(tags, ['v1'], 'the same index answers again once the database is back');
  for (let i = 0; i < 60 && !m.changes.live; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(m.changes.live, true, 'the change feed is live again');
});

/**
 * Fault injection: this replica's event loop takes what other replicas announce `ms` late (as
 * under load), its own messages at once. The feed's listener calls `hear` through the instance.
 */
function slowHearing(m: PostgresIndex, ms: number): void {
  const feed = m.changes as unknown as { hear(payload: string): void; origin: string };
  const hear = feed.hear.bind(feed);
  feed.hear = (payload) => {
    if ((JSON.parse(payload) as { o: string }).o === feed.origin) hear(payload);
    else setTimeout(() => hear(payload), ms);
  };
}

t.test('joining: a replica caches nothing until the others have heard of it', async (t) => {
  const s = `j_${randomBytes(6).toString('hex')}`;
  const a = await PostgresIndex.open(options(s), origin(), log);
  t.teardown(() => a.close());
  slowHearing(a, 400);
  const b = await PostgresIndex.open(options(s), origin(), log);
  t.teardown(() => b.close());
  slowHearing(b, 400);
  await sleep(100); // b has heard itself; a has not yet heard of b, so a's writes do not wait for b
  t.equal(b.changes.live, false, 'b does not trust its caches yet');
  t.equal(await b.tagCache('docker.io', 'library/j', 'v1'), undefined);
  await a.write((w) => w.setTagCache('docker.io', 'library/j', 'v1', D(1), 'm', 1));
  t.equal((await b.tagCache('docker.io', 'library/j', 'v1'))?.digest, D(1), 'the miss b read before was not kept');
  await until('b joined', () => b.changes.live, 10_000);
  t.equal(await b.tagCache('docker.io', 'library/j', 'v2'), undefined);
  await a.write((w) => w.setTagCache('docker.io', 'library/j', 'v2', D(2), 'm', 2));
  t.equal((await b.tagCache('docker.io', 'library/j', 'v2'))?.digest, D(2), 'once joined, a waits for b');
});

t.test('joining: a write under way when a replica says hello commits before it is welcomed', async (t) => {
  const s = `w_${randomBytes(6).toString('hex')}`;
  const a = await PostgresIndex.open(options(s), origin(), log);
  t.teardown(() => a.close());
  await a.write((w) => w.setTagCache('docker.io', 'library/w', 'v1', D(1), 'm', 1));
  // Another session holds the row, so a's next write waits in the database, announced to a's
  // replicas of the moment (none).
  const locker = connect(options(s));
  t.teardown(() => locker.end());
  let release = (): void => undefined;
  const held = new Promise<void>((r) => { release = r; });
  let locked = (): void => undefined;
  const lockTaken = new Promise<void>((r) => { locked = r; });
  const lockTx = locker.begin(async (tx) => {
    await tx`SELECT 1 FROM tag_cache WHERE tag = 'v1' FOR UPDATE`;
    locked();
    await held;
  });
  await lockTaken;
  const blocked = a.write((w) => w.setTagCache('docker.io', 'library/w', 'v1', D(2), 'm', 2));
  const b = await PostgresIndex.open(options(s), origin(), log);
  t.teardown(() => b.close());
  slowHearing(b, 300);
  // b reads (and, once joined, caches) the old row while the write is held.
  const start = Date.now();
  while (Date.now() - start < 2_500) {
    t.equal((await b.tagCache('docker.io', 'library/w', 'v1'))?.digest, D(1));
    await sleep(100);
  }
  t.equal(b.changes.live, false, 'not welcomed while a write announced without it is under way');
  release();
  await lockTx;
  await blocked;
  t.equal((await b.tagCache('docker.io', 'library/w', 'v1'))?.digest, D(2), 'the held write is seen once it resolves');
  await until('b joined', () => b.changes.live, 10_000);
  t.equal((await b.tagCache('docker.io', 'library/w', 'v1'))?.digest, D(2));
});

t.test('the web page\'s BrowseIndex on PostgreSQL', async (t) => {
  const m = await PostgresIndex.open(options(`b_${randomBytes(6).toString('hex')}`), origin(), log);
  t.teardown(() => m.close());
  await seed(m);
  await browseSuite(t, m.browse);
});
