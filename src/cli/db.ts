/** stowage db migrate|status --config FILE [--json]: the metadata database's schema. */
import type { Config } from '../config/schema.js';
import { pgOptions } from '../metadata/open.js';
import { describeTarget } from '../metadata/postgres/connect.js';
import { parse, readConfig, UsageError } from './common.js';
import { table } from './progress.js';

export const HELP = `usage: stowage db migrate|status --config FILE [--json]

The PostgreSQL metadata database (database.enabled) the config names:
  status    applied and pending schema migrations
  migrate   apply the pending ones (the server does this at start too, once however many
            replicas start together: an advisory lock serializes them)
With the SQLite index (no database section) both report its file and schema version.`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) { process.stdout.write(`${HELP}\n`); return 0; }
  const action = positionals[0];
  if (action !== 'migrate' && action !== 'status') throw new UsageError('expected "migrate" or "status"');
  const config = readConfig(values.config);
  const report = config.database.enabled ? await postgres(config, action) : await sqlite(config);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return 0;
  }
  process.stdout.write(`${report.database}: schema version ${report.current} of ${report.latest}\n`);
  if (report.appliedNow.length > 0) process.stdout.write(`applied now: ${report.appliedNow.join(', ')}\n`);
  if (report.migrations.length > 0) {
    process.stdout.write(`${table(['version', 'state', 'applied at', 'what'], report.migrations.map((m) => [m.version, m.state, m.appliedAt ?? '-', m.description]))}\n`);
  }
  return 0;
}

interface Report {
  database: string; current: number; latest: number; appliedNow: number[];
  migrations: Array<{ version: number; state: 'applied' | 'pending'; appliedAt?: string; description: string }>;
}

async function postgres(config: Config, action: 'migrate' | 'status'): Promise<Report> {
  const { connect } = await import('../metadata/postgres/connect.js');
  const { migrate, migrationStatus } = await import('../metadata/postgres/migrate.js');
  const options = pgOptions(config.database);
  const sql = connect(options);
  try {
    const appliedNow = action === 'migrate' ? await migrate(sql, options.schema) : [];
    const s = await migrationStatus(sql, options.schema);
    return {
      database: `postgres ${describeTarget(options)}`, current: s.current, latest: s.latest, appliedNow,
      migrations: [
        ...s.applied.map((m) => ({ version: m.version, state: 'applied' as const, appliedAt: m.appliedAt, description: m.description })),
        ...s.pending.map((m) => ({ version: m.version, state: 'pending' as const, description: m.description })),
      ],
    };
  } catch (err) {
    throw new UsageError(`database ${describeTarget(options)}: ${(err as Error).message}`);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

async function sqlite(config: Config): Promise<Report> {
  const { SqliteIndex } = await import('../metadata/sqlite.js');
  const { MIGRATIONS } = await import('../metadata/sqlite-schema.js');
  // Opening the index applies its migrations (SQLite has no separate step).
  const index = new SqliteIndex(config.metadata.path);
  const version = index.db.prepare<[], number>('PRAGMA user_version').pluck().get() ?? 0;
  await index.close();
  return { database: `sqlite ${config.metadata.path}`, current: version, latest: MIGRATIONS.length, appliedNow: [], migrations: [] };
}
