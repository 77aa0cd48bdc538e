/**
 * A network namespace with only a loopback interface, and daemons run inside it (dockerd,
 * containerd, podman, registries): whatever a client falls back to, nothing leaves the machine.
 * nsenter joins only the network namespace (`ip netns exec` would also remount /sys, hiding the
 * cgroup mounts dockerd needs).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childEnv } from './procs.js';
import { sleep } from './tools.js';

export interface Daemon extends ChildProcess { output(): string }

export class LoopbackNamespace {
  readonly name: string;
  private readonly daemons: Daemon[] = [];

  constructor(tag: string) {
    this.name = `stowage-${tag}-${process.pid}`;
    execFileSync('ip', ['netns', 'add', this.name]);
    this.run('ip', ['link', 'set', 'lo', 'up']);
  }

  private get enter(): string[] { return [`--net=/run/netns/${this.name}`, '--']; }

  links(): string[] {
    return this.run('ip', ['-o', 'link']).trim().split('\n').map((l) => l.split(':')[1]!.trim());
  }

  run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
    return execFileSync('nsenter', [...this.enter, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, timeout: 180_000 });
  }

  daemon(cmd: string, args: string[], logFile?: string): Daemon {
    const p = spawn('nsenter', [...this.enter, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() }) as Daemon;
    const chunks: Buffer[] = [];
    p.stdout?.on('data', (d: Buffer) => chunks.push(d));
    p.stderr?.on('data', (d: Buffer) => chunks.push(d));
    if (logFile) p.on('exit', () => writeFileSync(logFile, Buffer.concat(chunks)));
    p.output = () => Buffer.concat(chunks).toString();
    this.daemons.push(p);
    return p;
  }

  httpUp(url: string): () => boolean {
    return () => { try { this.run('curl', ['-sf', '-o', '/dev/null', url]); return true; } catch { return false; } };
  }

  /** A private dockerd (vfs, no iptables, no bridge) with `daemonJson` merged in; returns the docker CLI. */
  async dockerd(work: string, daemonJson: Record<string, unknown>): Promise<(...args: string[]) => string> {
    const sock = join(work, 'docker.sock');
    mkdirSync(join(work, 'docker-exec'), { recursive: true });
    writeFileSync(join(work, 'daemon.json'), JSON.stringify({
      'storage-driver': 'vfs', iptables: false, 'ip-masq': false, bridge: 'none',
      'data-root': join(work, 'docker-data'), 'exec-root': join(work, 'docker-exec'), pidfile: join(work, 'docker.pid'),
      hosts: [`unix://${sock}`], ...daemonJson,
    }));
    const d = this.daemon('dockerd', ['--config-file', join(work, 'daemon.json')], join(work, 'dockerd.log'));
    const docker = (...args: string[]) => this.run('docker', ['-H', `unix://${sock}`, ...args]);
    await until('dockerd', () => { try { docker('version'); return true; } catch { return false; } }, 60_000, () => d.output());
    return docker;
  }

  /** podman with its own storage and a registries.conf; returns the podman CLI. */
  podman(work: string, registriesConf: string): (...args: string[]) => string {
    const conf = join(work, 'registries.conf');
    writeFileSync(conf, registriesConf);
    return (...args: string[]) => this.run('podman', ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs', ...args],
      { CONTAINERS_REGISTRIES_CONF: conf });
  }

  async close(): Promise<void> {
    for (const p of this.daemons.reverse()) await stopDaemon(p);
    try { execFileSync('ip', ['netns', 'del', this.name]); } catch { /* already gone */ }
  }
}

export function stopDaemon(p: ChildProcess | undefined): Promise<void> {
  return new Promise((r) => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return r();
    p.once('exit', () => r());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 8000).unref();
  });
}

export async function until(what: string, check: () => boolean, timeoutMs = 30_000, describe = () => ''): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${describe()}`);
    await sleep(200);
  }
}

/** registries.conf sending docker.io to a mirror at `mirror` (host:port[/path]), plain HTTP. */
export const mirrorRegistriesConf = (mirror: string): string =>
  `unqualified-search-registries = ["docker.io"]\n[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "${mirror}"\ninsecure = true\n`;
