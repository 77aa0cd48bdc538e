/**
 * Calls `onChange` when a file's content may have changed (inode, size or mtime), by polling its
 * path: unlike fs.watch this keeps following a path whose file is replaced by a rename, which is
 * how editors, `htpasswd`, certbot and Kubernetes secret mounts update files.
 *
 * The first state is taken when watchPath is called, synchronously: call it before reading the
 * file, and any change after that read is seen. (fs.watchFile took its first stat later, on the
 * thread pool; a change that landed before that stat was never reported, until the next one.)
 */
import { stat, statSync, type Stats } from 'node:fs';

export interface FileWatch { close(): void }

/** What a change is judged by; a missing or unreadable file is a state too. */
const stateOf = (s: Stats | undefined): string => (s ? `${s.ino}:${s.size}:${s.mtimeMs}` : 'missing');

function statNow(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

export function watchPath(path: string, intervalMs: number, onChange: () => void): FileWatch {
  let last = stateOf(statNow(path));
  let polling = false;
  let closed = false;
  const timer = setInterval(() => {
    if (polling) return; // a slow stat (a network file system) is not stacked up
    polling = true;
    stat(path, (err, s) => {
      polling = false;
      if (closed) return; // a stat in flight when the watch was closed
      const now = stateOf(err ? undefined : s);
      if (now === last) return;
      last = now;
      onChange();
    });
  }, intervalMs);
  timer.unref();
  return {
    close: () => {
      closed = true;
      clearInterval(timer);
    },
  };
}
