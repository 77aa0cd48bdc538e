/**
 * A private Docker daemon for tests: its own socket, data root and exec root under a work
 * directory, no iptables, no bridge (containers run with --network host), as
 * ../shared/reference/containers.md describes. overlay2 when the kernel and file system allow it
 * (much faster builds), else vfs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childEnv } from './procs.js';
import { sleep } from './tools.js';

/** Debian's docker CLI matches Debian's dockerd (a newer CLI elsewhere on PATH may lack buildx for BuildKit). */
export const DOCKER_CLI = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs a command to its end without blocking the event loop. */
export function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: options.env ?? childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = options.timeoutMs ? setTimeout(() => p.kill('SIGKILL'), options.timeoutMs) : undefined;
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    p.stdin.end(options.input ?? '');
  });
}

export interface Dockerd {
  driver: string;
  env: NodeJS.ProcessEnv;
  /** Runs the docker CLI against this daemon; throws with its output unless it exits 0. */
  docker(args: string[], options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<string>;
  /** Same, returning the result whatever the exit code. */
  dockerResult(args: string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  output(): string;
  stop(): Promise<void>;
}

export async function startDockerd(work: string): Promise<Dockerd> {
  for (const driver of ['overlay2', 'vfs']) {
    const d = await tryDriver(work, driver);
    if (d) return d;
  }
  throw new Error('dockerd started with neither overlay2 nor vfs');
}

async function tryDriver(work: string, driver: string): Promise<Dockerd | undefined> {
  const dir = join(work, `dockerd-${driver}`);
  mkdirSync(join(dir, 'exec'), { recursive: true });
  const sock = join(dir, 'docker.sock');
  writeFileSync(join(dir, 'daemon.json'), JSON.stringify({
    'storage-driver': driver, iptables: false, 'ip-masq': false, bridge: 'none',
    'data-root': join(dir, 'data'), 'exec-root': join(dir, 'exec'), pidfile: join(dir, 'docker.pid'),
    hosts: [`unix://${sock}`],
  }));
  const proc: ChildProcess = spawn('dockerd', ['--config-file', join(dir, 'daemon.json')], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  proc.stdout?.on('data', (b: Buffer) => chunks.push(b));
  proc.stderr?.on('data', (b: Buffer) => chunks.push(b));
  const output = () => Buffer.concat(chunks).toString();
  const env = childEnv({ DOCKER_HOST: `unix://${sock}`, DOCKER_BUILDKIT: '1' });
  const dockerResult = (args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) =>
    run(DOCKER_CLI, args, { env: { ...env, ...options.env }, timeoutMs: options.timeoutMs ?? 600_000 });
  const docker = async (args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) => {
    const r = await dockerResult(args, options);
    if (r.code !== 0) throw new Error(`docker ${args.slice(0, 3).join(' ')} exited ${r.code}:\n${r.stderr.slice(-4000)}${r.stdout.slice(-2000)}`);
    return r.stdout;
  };
  const stop = async () => {
    await new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 20_000).unref();
    });
    // dockerd leaves its netns bind mount (and overlay mounts, if killed) behind: unmount so the
    // directory can be removed.
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir));
    for (const m of mounts.sort().reverse()) await run('umount', ['-l', m]);
  };
  const end = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) return undefined; // this driver is not available here
    if ((await dockerResult(['version'], { timeoutMs: 10_000 })).code === 0) break;
    if (Date.now() > end) {
      await stop();
      throw new Error(`dockerd (${driver}) did not answer:\n${output().slice(-3000)}`);
    }
    await sleep(300);
  }
  return { driver, env, docker, dockerResult, output, stop };
}
