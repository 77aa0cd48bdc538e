/**
 * A private PostgreSQL 15 (Debian's `postgresql`) for one test file: its own data directory,
 * socket directory and free loopback port, so several test files can each run one at once.
 * Nothing of Debian's default cluster (15/main, port 5432) is used.
 *
 * - The server refuses to run as root, so as root initdb and the postmaster run as the
 *   `postgres` user (setpriv); the temp directory is mode 711 so that user can reach its data.
 * - The postmaster is our child (no pg_ctl daemon) started through `setpriv --pdeathsig QUIT`:
 *   if the test process dies however it dies, the kernel tells the postmaster to shut down
 *   immediately, so no server outlives its test. An ordinary exit also SIGKILLs it and removes
 *   the directory (scratch.ts).
 * - fsync is off (an OS crash is not what tests simulate) but synchronous_commit stays on: a
 *   committed transaction is in the kernel's page cache before COMMIT returns, so it survives
 *   kill9(), as it would on a production server.
 * See /work/shared/reference/postgres-chromium-wan.md for the facts this rests on.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { atExit, forgetScratchDir, isRunning, killTree, scratchDir } from './scratch.js';
import { freePort, hasExited, missingToolsFrom, sleep, waitExit } from './tools.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const pgBin = (name: string) => join(PG_BIN, name);
const PG_TOOLS = ['initdb', 'postgres', 'psql'].map(pgBin);

/** Why PostgreSQL cannot run here (a skip reason), or undefined. Throws under CI=true. */
export function missingPostgres(): string | undefined {
  return missingToolsFrom('postgresql', PG_TOOLS);
}

export interface PostgresOptions {
  /** Extra server settings, passed as `-c name=value` (e.g. { max_connections: 200 }). */
  settings?: Record<string, string | number | boolean>;
}

export interface PostgresCluster {
  readonly host: string;
  /** Stays the same across stop()/start() and kill9()/start(). */
  readonly port: number;
  /** The superuser; authentication is `trust`, so there is no password. */
  readonly user: string;
  /** DSN of the `postgres` database: postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly dataDir: string;
  /** DSN of another database on this cluster. */
  urlFor(database: string): string;
  /** CREATE DATABASE name (letters, digits, underscores); resolves with its DSN. */
  createDatabase(name: string): Promise<string>;
  /**
   * Runs SQL through the psql binary (ON_ERROR_STOP, unaligned, tuples only: `select 1, 2`
   * gives "1|2\n") and resolves with its stdout; rejects with psql's stderr on an error.
   */
  psql(sql: string, options?: { database?: string }): Promise<string>;
  /** The postmaster's pid while it runs. */
  pid(): number | undefined;
  /** The server's log so far. */
  log(): string;
  /** Fast shutdown (SIGINT: open sessions are cut, committed data is kept); resolves once down. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** SIGKILL to the postmaster and every backend, as a crash would; start() then runs recovery. */
  kill9(): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

const DB_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The environment for PostgreSQL's programs: no PG* variables of ours leaking in. */
function pgEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG') && k !== 'NODE_OPTIONS'));
  return { ...env, LC_ALL: 'C', PGCONNECT_TIMEOUT: '10' };
}

/** setpriv arguments that run a program as `postgres` when we are root, and as ourselves otherwise. */
function asPostgres(pdeathsig: boolean): string[] {
  const args = pdeathsig ? ['--pdeathsig', 'QUIT'] : [];
  if (process.getuid?.() === 0) args.push('--reuid=postgres', '--regid=postgres', '--clear-groups');
  return args;
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: pgEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      reject(new Error(`${cmd.split('/').pop()} exited ${code}: ${Buffer.concat(err).toString('utf8').trim()}`));
    });
    // A command that fails at once (psql with the server stopped) may close its stdin before the
    // input is written: that EPIPE says nothing the exit code does not.
    p.stdin.on('error', () => undefined);
    p.stdin.end(input ?? '');
  });
}

/** The status line of postmaster.pid ("ready" once it accepts connections) if it is `pid`'s. */
function postmasterStatus(dataDir: string, pid: number): string | undefined {
  try {
    const lines = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    return Number(lines[0]) === pid ? lines[7]?.trim() : undefined;
  } catch {
    return undefined;
  }
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresCluster> {
  const dir = await scratchDir('stowage-pg-');
  await chmod(dir, 0o711);
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  const logFile = join(dir, 'postgres.log');
  await mkdir(dataDir, { mode: 0o700 });
  await mkdir(socketDir, { mode: 0o700 });
  if (process.getuid?.() === 0) {
    const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim()));
    await chown(dataDir, uid!, gid!);
    await chown(socketDir, uid!, gid!);
  }
  await run('setpriv', [...asPostgres(false), pgBin('initdb'), '-D', dataDir, '-A', 'trust', '-U', 'postgres',
    '--locale=C', '-E', 'UTF8', '--no-sync', '--no-instructions']);

  const settings: Record<string, string | number | boolean> = {
    listen_addresses: '127.0.0.1', unix_socket_directories: socketDir, fsync: 'off', full_page_writes: 'off',
    shared_buffers: '32MB', ...options.settings,
  };
  let port = await freePort();
  let proc: ChildProcess | undefined;
  let unregister: () => void = () => undefined;
  const readLog = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  const spawnPostmaster = async (): Promise<'ready' | 'port-taken'> => {
    const logStart = readLog().length;
    const fd = openSync(logFile, 'a');
    const args = [...asPostgres(true), pgBin('postgres'), '-D', dataDir, '-p', String(port),
      ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${String(v)}`])];
    const p = spawn('setpriv', args, { env: pgEnv(), stdio: ['ignore', fd, fd] });
    closeSync(fd);
    // A test that forgets destroy() must not hang its process: the exit hook kills the server.
    p.unref();
    proc = p;
    const pid = p.pid!;
    unregister = atExit(() => killTree(pid));
    const end = Date.now() + 60_000;
    for (;;) {
      if (hasExited(p)) {
        unregister();
        const text = readLog().slice(logStart);
        if (/could not bind|Address already in use|could not create any TCP\/IP sockets/.test(text)) return 'port-taken';
        throw new Error(`postgres exited (${p.exitCode ?? p.signalCode}) on port ${port}:\n${text.slice(-3000)}`);
      }
      if (postmasterStatus(dataDir, pid) === 'ready') return 'ready';
      if (Date.now() > end) {
        killTree(pid);
        throw new Error(`postgres did not get ready within 60 s on port ${port}:\n${readLog().slice(logStart).slice(-3000)}`);
      }
      await sleep(50);
    }
  };

  const start = async (samePort: boolean) => {
    if (proc && !hasExited(proc)) return;
    for (let attempt = 1; ; attempt++) {
      if (await spawnPostmaster() === 'ready') return;
      // Another test took the port between freePort() and bind(): a new one at first start;
      // on a restart the port must stay, so wait for it instead.
      if (attempt >= (samePort ? 50 : 5)) throw new Error(`postgres: port ${port} stays taken:\n${readLog().slice(-2000)}`);
      if (samePort) await sleep(200);
      else port = await freePort();
    }
  };
  await start(false);

  const stop = async () => {
    const p = proc;
    if (!p || hasExited(p)) return;
    p.kill('SIGINT');
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    await waitExit(p);
    clearTimeout(timer);
    unregister();
  };
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const psql = (sql: string, o: { database?: string } = {}) => run(pgBin('psql'),
    ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', o.database ?? 'postgres'], sql);

  return {
    host: '127.0.0.1',
    get port() { return port; },
    user: 'postgres',
    get url() { return url('postgres'); },
    dataDir,
    urlFor: url,
    async createDatabase(name) {
      if (!DB_NAME.test(name)) throw new Error(`not a plain database name: ${JSON.stringify(name)}`);
      await psql(`CREATE DATABASE "${name}"`);
      return url(name);
    },
    psql,
    pid: () => (proc && !hasExited(proc) ? proc.pid : undefined),
    log: readLog,
    stop,
    start: () => start(true),
    async kill9() {
      const p = proc;
      if (!p || hasExited(p)) return;
      const pids = killTree(p.pid!);
      await waitExit(p);
      unregister();
      // A backend still attached to the old shared memory would make the restart refuse to run.
      const end = Date.now() + 10_000;
      while (pids.some(isRunning) && Date.now() < end) await sleep(20);
    },
    async destroy() {
      await stop();
      forgetScratchDir(dir);
    },
  };
}
