/**
 * The PostgreSQL client (postgres.js) built from the `database` config, and the mapping of a lost
 * or refused database to the registry's 503: a request that needs the index while the database is
 * away is UNAVAILABLE, never a 500 with a driver's stack.
 */
import { readFileSync } from 'node:fs';
import postgres, { type Sql } from 'postgres';
import { RegistryError } from '../../errors.js';

export interface PgOptions {
  /** A postgres:// URL (DSN); fields below override its parts. */
  url?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  dbname?: string;
  /** Tables live in this schema (search_path); created if missing. */
  schema?: string;
  /** Absent: the url's own sslmode. */
  sslmode?: 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
  sslcert?: string;
  sslkey?: string;
  sslrootcert?: string;
  connectTimeoutMs: number;
  /** Most connections this process opens (besides the LISTEN connection). */
  maxOpen: number;
  /** Idle connections are closed after this (0: never). */
  maxIdleTimeMs: number;
  /** Connections are replaced after this (0: never). */
  maxLifetimeMs: number;
  /** Longest a statement may run before the database cancels it. */
  statementTimeoutMs: number;
}

/** int8 (bigint: sizes, milliseconds, counts) as a JavaScript number: every value here is below 2^53. */
const INT8 = { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) };

function ssl(o: PgOptions): boolean | 'allow' | 'prefer' | object | undefined {
  switch (o.sslmode) {
    case undefined: return undefined;
    case 'disable': return false;
    case 'allow':
    case 'prefer': return o.sslmode;
    default: {
      const files = {
        ...(o.sslrootcert ? { ca: readFileSync(o.sslrootcert) } : {}),
        ...(o.sslcert ? { cert: readFileSync(o.sslcert) } : {}),
        ...(o.sslkey ? { key: readFileSync(o.sslkey) } : {}),
      };
      if (o.sslmode === 'require') return { ...files, rejectUnauthorized: false };
      // verify-ca: the chain must lead to the CA, whatever name the server has.
      if (o.sslmode === 'verify-ca') return { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined };
      return { ...files, rejectUnauthorized: true };
    }
  }
}

export function connect(o: PgOptions): Sql {
  const options = {
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.user !== undefined ? { user: o.user } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.dbname !== undefined ? { database: o.dbname } : {}),
    ...(o.sslmode !== undefined ? { ssl: ssl(o) } : {}),
    max: o.maxOpen,
    idle_timeout: o.maxIdleTimeMs > 0 ? o.maxIdleTimeMs / 1000 : 0,
    max_lifetime: o.maxLifetimeMs > 0 ? o.maxLifetimeMs / 1000 : null,
    connect_timeout: Math.max(1, Math.ceil(o.connectTimeoutMs / 1000)),
    types: { int8: INT8 },
    onnotice: () => undefined,
    connection: {
      application_name: 'stowage',
      statement_timeout: o.statementTimeoutMs,
      ...(o.schema ? { search_path: o.schema } : {}),
    },
  };
  return (o.url ? postgres(o.url, options) : postgres(options)) as unknown as Sql;
}

/** SQLSTATE classes and client codes that mean "the database is not there", not "this statement is wrong". */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED']);

export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string } | null;
  const code = e?.code;
  if (typeof code !== 'string') return false;
  // 08: connection exception; 57P0x: admin shutdown, crash shutdown, cannot connect now; 53: resources.
  return UNAVAILABLE_CODES.has(code) || code.startsWith('08') || /^57P0[1-3]$/.test(code) || code.startsWith('53');
}

/** Runs a database call; a lost database becomes UNAVAILABLE (503). */
export async function guard<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (isUnavailable(err)) {
      throw new RegistryError('UNAVAILABLE', 'the metadata database is unavailable', { status: 503, cause: err });
    }
    throw err;
  }
}

/** "host:port/dbname" of the options, never the password (log lines, errors). */
export function describeTarget(o: PgOptions): string {
  let host = o.host;
  let port = o.port;
  let db = o.dbname;
  if (o.url) {
    try {
      const u = new URL(o.url);
      host ??= u.hostname;
      port ??= u.port ? Number(u.port) : undefined;
      db ??= u.pathname.replace(/^\//, '') || undefined;
    } catch { /* postgres.js will say what is wrong with it */ }
  }
  return `${host ?? 'localhost'}:${port ?? 5432}/${db ?? ''}${o.schema ? ` schema ${o.schema}` : ''}`;
}
