/** Child processes for integration tests: stowage itself and Debian's docker-registry (registry:2). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { scratchDir } from './scratch.js';
import { freePort, waitForHttp } from './tools.js';
import { asUser, checkoutReadableBy } from './unprivileged.js';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(REPO_ROOT, 'dist/cli.js');

export interface Proc {
  url: string;
  /** The config file the process was started with (stowage only). */
  configFile?: string;
  port: number;
  rootDir: string;
  proc: ChildProcess;
  output(): string;
  /** Parsed JSON log lines (stowage only). */
  logs(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

function track(proc: ChildProcess): { output: () => string } {
  const chunks: Buffer[] = [];
  proc.stdout?.on('data', (d: Buffer) => chunks.push(d));
  proc.stderr?.on('data', (d: Buffer) => chunks.push(d));
  return { output: () => Buffer.concat(chunks).toString('utf8') };
}

function stopper(proc: ChildProcess, signal: NodeJS.Signals): () => Promise<void> {
  return () => new Promise((resolveStop) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolveStop();
    // 'close' comes once the pipes are drained, so the last log lines are in output(); a
    // grandchild holding a pipe open must not hang the test, hence the bound after 'exit'.
    proc.once('close', () => resolveStop());
    proc.once('exit', () => setTimeout(resolveStop, 2000).unref());
    proc.kill(signal);
    setTimeout(() => proc.kill('SIGKILL'), 5000).unref();
  });
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = cur && typeof cur === 'object' && !Array.isArray(cur) && v && typeof v === 'object' && !Array.isArray(v)
      ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/**
 * The environment a child process gets: ours without tap's NODE_OPTIONS (its --import hooks),
 * so stowage runs as it does in production. On Node 24, tap's processinfo hook inside the child
 * made better-sqlite3 abort in a Statement destructor, which plain `node dist/cli.js` never does.
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  return { ...env, ...extra };
}

export interface StowageOptions {
  rootDir?: string; config?: Record<string, unknown>; env?: NodeJS.ProcessEnv; port?: number;
  /** A storage driver section ({ s3: {...} }) instead of the filesystem under rootDir. */
  storage?: Record<string, unknown>;
  /** Run as this uid/gid (via setpriv; needs root), e.g. so file permissions apply to stowage. */
  uid?: number;
  /** Serving HTTPS (http.tls in config): the CA to trust, and a client certificate for mutual TLS. */
  tls?: { ca: string; cert?: string; key?: string };
}

/** An undici dispatcher trusting `ca` (and presenting a client certificate), for HTTPS tests. */
export function tlsDispatcher(tls: { ca: string; cert?: string; key?: string }): Agent {
  return new Agent({ connect: { ca: readFileSync(tls.ca), ...(tls.cert ? { cert: readFileSync(tls.cert), key: readFileSync(tls.key!) } : {}) } });
}

/** Writes a stowage config file (as startStowage does) without starting anything: for the CLI tools. */
export async function writeStowageConfig(options: StowageOptions = {}): Promise<{ file: string; rootDir: string; port: number }> {
  const port = options.port ?? await freePort();
  const rootDir = options.rootDir ?? await scratchDir('stowage-it-');
  const config = deepMerge({
    version: '0.1',
    log: { level: 'info' },
    storage: { ...(options.storage ?? { filesystem: { rootdirectory: rootDir } }), delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}` },
  }, options.config ?? {});
  const file = join(rootDir, '..', `stowage-${port}.yml`);
  await writeFile(file, stringify(config));
  return { file, rootDir, port };
}

export interface CliResult { code: number; stdout: string; stderr: string }

/** Runs `node dist/cli.js ARGS` to its end (as `uid` via setpriv, if given: needs root). */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; uid?: number } = {}): Promise<CliResult> {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does)');
  return new Promise((resolveRun, reject) => {
    const argv = [CLI, ...args];
    const env = childEnv(options.env);
    const proc = options.uid === undefined
      ? spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('setpriv', [`--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups', process.execPath, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout.on('data', (d: Buffer) => out.push(d));
    proc.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    proc.on('error', reject);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

export async function startStowage(options: StowageOptions = {}): Promise<Proc> {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does)');
  const { file, rootDir, port } = await writeStowageConfig(options);
  const env = childEnv(options.env);
  for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_') && !options.env?.[k]) delete env[k];
  const proc = options.uid === undefined
    ? spawn(process.execPath, [CLI, 'serve', '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('setpriv', [...asUser(options.uid), process.execPath, join(checkoutReadableBy(options.uid), 'dist/cli.js'), 'serve', '--config', file],
      { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const { output } = track(proc);
  const url = options.tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
  const dispatcher = options.tls ? tlsDispatcher(options.tls) : undefined;
  await waitForHttp(`${url}/v2/`, 20_000, output, () => proc.exitCode !== null,
    dispatcher ? (u) => undiciFetch(u, { dispatcher }) as unknown as Promise<Response> : undefined);
  await dispatcher?.close();
  return {
    url, port, rootDir, proc, output, configFile: file,
    logs: () => output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: stopper(proc, 'SIGTERM'),
    kill9: stopper(proc, 'SIGKILL'),
  };
}

export interface ConfigFileOptions {
  /** The config file as it is (e.g. the shipped config/config.yml). */
  file: string;
  /** Working directory: relative paths in the config (./data) resolve here. */
  cwd: string;
  /** host:port to listen on, set with REGISTRY_HTTP_ADDR (the file's own addr is used if omitted). */
  addr?: string;
  env?: NodeJS.ProcessEnv;
}

/** Starts `stowage serve --config FILE` as an operator would, with no test config written. */
export async function startStowageWithFile(options: ConfigFileOptions): Promise<Proc> {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does)');
  const addr = options.addr ?? `127.0.0.1:${await freePort()}`;
  const env = childEnv({ ...options.env, REGISTRY_HTTP_ADDR: addr });
  for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_') && k !== 'REGISTRY_HTTP_ADDR' && !options.env?.[k]) delete env[k];
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', resolve(options.file)], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const { output } = track(proc);
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`, 20_000, output, () => proc.exitCode !== null);
  return {
    url, port, rootDir: join(options.cwd, 'data'), proc, output,
    logs: () => output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: stopper(proc, 'SIGTERM'),
    kill9: stopper(proc, 'SIGKILL'),
  };
}

export const SHIPPED_CONFIG = join(REPO_ROOT, 'config/config.yml');

export interface Registry2Options {
  rootDir?: string;
  port?: number;
  /** Extra YAML sections (auth, proxy, ...). */
  config?: Record<string, unknown>;
}

/** Debian's docker-registry (distribution 2.8.2) on a loopback port. Its access log goes to output(). */
export async function startRegistry2(options: Registry2Options = {}): Promise<Proc> {
  const port = options.port ?? await freePort();
  const rootDir = options.rootDir ?? await scratchDir('registry2-it-');
  const config = deepMerge({
    version: 0.1,
    log: { level: 'info', formatter: 'text' },
    storage: { filesystem: { rootdirectory: rootDir }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}` },
  }, options.config ?? {});
  const file = join(rootDir, '..', `registry2-${port}.yml`);
  await writeFile(file, stringify(config));
  const proc = spawn('docker-registry', ['serve', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { output } = track(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v2/`, 20_000, output, () => proc.exitCode !== null);
  return { url, port, rootDir, proc, output, logs: () => [], stop: stopper(proc, 'SIGTERM'), kill9: stopper(proc, 'SIGKILL') };
}

/** How many requests registry:2's access log shows for a method and a path fragment. */
export function countRegistry2Requests(r: Proc, method: string, pathPart: string): number {
  return r.output().split('\n').filter((l) => l.includes(`"${method} `) && l.includes(pathPart) && / HTTP\/1\.[01]" \d{3} /.test(l)).length;
}
