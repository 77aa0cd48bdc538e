/**
 * A private Docker daemon for tests: its own data, exec root and socket, vfs storage, no
 * iptables and no bridge (containers, if any, use --network host). Runs in whatever network
 * namespace the test runs in.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childEnv } from './procs.js';
import { sleep } from './tools.js';

export interface Dockerd {
  /** Runs the docker CLI against this daemon; throws with its stderr on failure. */
  docker(...args: string[]): string;
  stop(): Promise<void>;
}

export async function startDockerd(work: string, extraConfig: Record<string, unknown> = {}): Promise<Dockerd> {
  const sock = join(work, 'docker.sock');
  mkdirSync(join(work, 'docker-exec'), { recursive: true });
  writeFileSync(join(work, 'daemon.json'), JSON.stringify({
    'storage-driver': 'vfs', iptables: false, 'ip-masq': false, bridge: 'none',
    'data-root': join(work, 'docker-data'), 'exec-root': join(work, 'docker-exec'), pidfile: join(work, 'docker.pid'),
    hosts: [`unix://${sock}`], ...extraConfig,
  }));
  const proc: ChildProcess = spawn('dockerd', ['--config-file', join(work, 'daemon.json')], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  const out: Buffer[] = [];
  proc.stdout?.on('data', (d: Buffer) => out.push(d));
  proc.stderr?.on('data', (d: Buffer) => out.push(d));
  const docker = (...args: string[]) => {
    try {
      return execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`docker ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
    }
  };
  const end = Date.now() + 60_000;
  for (;;) {
    try { docker('version'); break; } catch (e) {
      if (proc.exitCode !== null || Date.now() > end) throw new Error(`dockerd did not start: ${(e as Error).message}\n${Buffer.concat(out).toString().slice(-3000)}`);
      await sleep(250);
    }
  }
  return {
    docker,
    stop: () => new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 10_000).unref();
    }),
  };
}
