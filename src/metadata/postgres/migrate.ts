/**
 * Applies the schema migrations in one transaction under an advisory lock, so N replicas starting
 * at once apply each migration once: the first takes the lock and migrates, the others wait for it
 * and then find nothing to do. DDL is transactional in PostgreSQL: a failed migration leaves the
 * schema as it was. `stowage db migrate|status` (cli/db.ts) call the same functions.
 */
import type { Sql } from 'postgres';
import { MIGRATIONS } from './schema.js';

/** pg_advisory_xact_lock key: "STOW" in ASCII. */
const MIGRATION_LOCK = 0x53544f57;

export interface MigrationStatus {
  /** Highest applied version (0: none). */
  current: number;
  latest: number;
  applied: Array<{ version: number; description: string; appliedAt: string }>;
  pending: Array<{ version: number; description: string }>;
}

const TABLE = 'stowage_schema_migrations';

async function ensureTable(sql: Sql, schema: string | undefined): Promise<void> {
  if (schema) await sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  await sql.unsafe(`CREATE TABLE IF NOT EXISTS ${TABLE} (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
}

/** Applies what is pending; returns the versions this call applied (none when another replica did). */
export async function migrate(sql: Sql, schema?: string): Promise<number[]> {
  const applied: number[] = [];
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await ensureTable(tx as unknown as Sql, schema);
    const [row] = await tx.unsafe<Array<{ v: number | null }>>(`SELECT max(version) AS v FROM ${TABLE}`);
    const current = row?.v ?? 0;
    if (current > MIGRATIONS.length) {
      throw new Error(`the database schema is at version ${current}, newer than this stowage knows (${MIGRATIONS.length}): run the newer stowage, or a database of its own`);
    }
    for (let v = current + 1; v <= MIGRATIONS.length; v++) {
      const m = MIGRATIONS[v - 1]!;
      await tx.unsafe(m.sql);
      await tx.unsafe(`INSERT INTO ${TABLE} (version, description) VALUES ($1, $2)`, [v, m.description]);
      applied.push(v);
    }
  });
  return applied;
}

export async function migrationStatus(sql: Sql, schema?: string): Promise<MigrationStatus> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await ensureTable(tx as unknown as Sql, schema);
  });
  const rows = await sql.unsafe<Array<{ version: number; description: string; applied_at: Date }>>(
    `SELECT version, description, applied_at FROM ${TABLE} ORDER BY version`);
  const current = rows.reduce((m, r) => Math.max(m, r.version), 0);
  return {
    current,
    latest: MIGRATIONS.length,
    applied: rows.map((r) => ({ version: r.version, description: r.description, appliedAt: r.applied_at.toISOString() })),
    pending: MIGRATIONS.map((m, i) => ({ version: i + 1, description: m.description })).filter((m) => m.version > current),
  };
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
