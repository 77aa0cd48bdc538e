/**
 * Running stowage as an unprivileged user (tests that run as root and want file permissions to
 * bind stowage, or a service user's view), wherever the checkout lives.
 *
 * Two things stood in the way when the checkout sits under a directory other users cannot enter
 * (a clone under /root, a `mktemp -d` directory):
 * - tap's @tapjs/processinfo wraps child_process and puts its --import loader (a file in the
 *   checkout's node_modules) into every child's NODE_OPTIONS, whatever env the test passes. The
 *   command line therefore runs `env -u NODE_OPTIONS` after dropping privileges, so stowage starts
 *   as it does in production, with no test loader at all.
 * - the user cannot read dist/ or node_modules/ there. Then the program files are linked (hard
 *   links: no bytes copied; a copy across file systems) into a directory under the system's temp
 *   directory that the user can reach, removed when the test process exits.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
/** What `node dist/cli.js` needs at run time, and the shipped config files. */
const PROGRAM_FILES = ['dist', 'node_modules', 'package.json', 'config', 'deploy'];

const staged = new Map<number, string>();
process.once('exit', () => {
  for (const dir of staged.values()) {
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});

/** `setpriv ... env -u NODE_OPTIONS`: argv prefix that runs the rest as uid:uid, no groups, no test loader. */
export function asUser(uid: number, ...extra: string[]): string[] {
  return [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...extra, 'env', '-u', 'NODE_OPTIONS'];
}

/** A directory holding dist/cli.js, what it needs and the shipped configs, that `uid` can read: the checkout, or a linked copy. */
export function checkoutReadableBy(uid: number): string {
  const readable = spawnSync('setpriv', [...asUser(uid), 'test', '-r', join(REPO_ROOT, 'dist/cli.js')]).status === 0;
  if (readable) return REPO_ROOT;
  let dir = staged.get(uid);
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'stowage-checkout-'));
    chmodSync(dir, 0o755);
    staged.set(uid, dir);
    const sources = PROGRAM_FILES.map((f) => join(REPO_ROOT, f));
    try {
      execFileSync('cp', ['-al', ...sources, dir], { stdio: 'ignore' });
    } catch {
      // Another file system: hard links cannot cross it.
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      chmodSync(dir, 0o755);
      execFileSync('cp', ['-a', ...sources, dir], { stdio: 'ignore' });
    }
  }
  return dir;
}
