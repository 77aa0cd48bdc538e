/** Opens the configured metadata adapter: SQLite by default, PostgreSQL when `database.enabled`. */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { PgOptions } from './postgres/connect.js';
import type { MetadataIndex } from './port.js';
import { SqliteIndex } from './sqlite.js';

/** config.database as the PostgreSQL adapter's options. */
export function pgOptions(db: Config['database']): PgOptions {
  return {
    ...(db.dsn !== undefined ? { url: db.dsn } : {}),
    ...(db.host !== undefined ? { host: db.host } : {}),
    ...(db.port !== undefined ? { port: db.port } : {}),
    ...(db.user !== undefined ? { user: db.user } : {}),
    ...(db.password !== undefined ? { password: db.password } : {}),
    ...(db.dbname !== undefined ? { dbname: db.dbname } : {}),
    ...(db.schema !== undefined ? { schema: db.schema } : {}),
    ...(db.sslmode !== undefined ? { sslmode: db.sslmode } : db.dsn === undefined ? { sslmode: 'prefer' as const } : {}),
    ...(db.sslcert !== undefined ? { sslcert: db.sslcert } : {}),
    ...(db.sslkey !== undefined ? { sslkey: db.sslkey } : {}),
    ...(db.sslrootcert !== undefined ? { sslrootcert: db.sslrootcert } : {}),
    connectTimeoutMs: db.connecttimeout,
    statementTimeoutMs: db.statementtimeout,
    maxOpen: db.pool.maxopen,
    maxIdleTimeMs: db.pool.maxidletime,
    maxLifetimeMs: db.pool.maxlifetime,
  };
}

/** `origin` names this process in the database's change announcements (main.ts: the instance id). */
export async function openMetadata(config: Config, origin: string, log: Logger): Promise<MetadataIndex> {
  if (!config.database.enabled) return new SqliteIndex(config.metadata.path);
  // Loaded only when configured: a single node never loads the PostgreSQL client.
  const { PostgresIndex } = await import('./postgres/index.js');
  return PostgresIndex.open(pgOptions(config.database), origin, log.child({ component: 'database' }));
}
