/**
 * Calls `onChange` when a file's content may have changed (mtime, size or inode), polling with
 * fs.watchFile: unlike fs.watch it keeps following a path whose file is replaced by a rename,
 * which is how editors, `htpasswd`, certbot and Kubernetes secret mounts update files.
 */
import { unwatchFile, watchFile, type Stats } from 'node:fs';

export interface FileWatch { close(): void }

export function watchPath(path: string, intervalMs: number, onChange: () => void): FileWatch {
  const listener = (cur: Stats, prev: Stats) => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) onChange();
  };
  watchFile(path, { interval: intervalMs, persistent: false }, listener);
  return { close: () => unwatchFile(path, listener) };
}
