/**
 * What a test process must undo when it exits, however it ends its tests: servers the helpers
 * started (stopped first) and the directories made for them (removed after). Directories are not
 * removed when a server stops, because tests restart servers on the same directory; a full suite
 * would otherwise leave gigabytes in /tmp.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const stoppers = new Set<() => void>();
const dirs = new Set<string>();

process.once('exit', () => {
  for (const stop of stoppers) {
    try { stop(); } catch { /* best effort */ }
  }
  for (const dir of dirs) {
    try { rmSync(dir, { recursive: true, force: true, maxRetries: 3 }); } catch { /* best effort */ }
  }
});

/** A fresh directory under the system temp dir, removed when this process exits. */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

/** Removes a scratch directory now (and forgets it). */
export function forgetScratchDir(dir: string): void {
  dirs.delete(dir);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * Registers a synchronous stop (e.g. SIGKILL to a server) run at exit before the directories go;
 * the returned function unregisters it once the server has been stopped the ordinary way.
 */
export function atExit(stop: () => void): () => void {
  stoppers.add(stop);
  return () => { stoppers.delete(stop); };
}

/** Pids whose parent is `pid` (a server's workers or backends), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch { /* it exited meanwhile */ }
  }
  return out;
}

/**
 * SIGKILLs a server and its direct children at once (a killed nginx master or postmaster would
 * leave its workers running); returns every pid it signalled.
 */
export function killTree(pid: number): number[] {
  const pids = [pid, ...childPids(pid)];
  for (const p of pids) {
    try { process.kill(p, 'SIGKILL'); } catch { /* gone already */ }
  }
  return pids;
}

/** Running, and not a zombie waiting for its new parent (init) to reap it. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
