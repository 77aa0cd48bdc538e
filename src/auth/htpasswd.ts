/**
 * registry:2's `auth.htpasswd`: users and bcrypt hashes from an htpasswd file (`htpasswd -B`).
 * Any other kind of entry (MD5, SHA1, crypt, plain) is refused with its line number: those hashes
 * are weak, and registry:2 does not accept them either.
 *
 * bcrypt is slow on purpose (tens of ms), and Docker sends its credentials with every request, so
 * a verification is remembered for a short while, keyed by sha256 of a per-process random key,
 * user and password (the cache holds nothing a memory dump could crack faster than the bcrypt
 * hash itself; crypto.hash costs under 1 µs where an HMAC object costs 4). Unknown users cost a bcrypt comparison too, so timing does not tell
 * which user names exist. The file is re-read when it changes; a broken edit is logged and the
 * previous users stay in force.
 */
import { hash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { watchPath, type FileWatch } from './watch.js';

export interface HtpasswdOptions {
  realm: string;
  path: string;
  /** How long a verified user+password is trusted without bcrypt (default 60 s). */
  cacheTtlMs?: number;
  /** How often the file is checked for changes (default 1 s). */
  reloadIntervalMs?: number;
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

export class HtpasswdError extends Error {
  constructor(readonly file: string, readonly line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = 'HtpasswdError';
  }
}

/** user -> bcrypt hash. Blank lines and lines starting with '#' are skipped. */
export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = colon > 0 ? line.slice(0, colon) : '';
    const hash = colon > 0 ? line.slice(colon + 1).trim() : '';
    if (user === '') throw new HtpasswdError(file, i + 1, 'not a "user:hash" line');
    if (!BCRYPT.test(hash)) throw new HtpasswdError(file, i + 1, `the entry for "${user}" is not a bcrypt hash (only bcrypt is accepted: htpasswd -B)`);
    if (users.has(user)) throw new HtpasswdError(file, i + 1, `user "${user}" appears twice`);
    users.set(user, hash);
  });
  return users;
}

export class HtpasswdFile {
  readonly realm: string;
  private users: Map<string, string>;
  private readonly verdicts: LRUCache<string, boolean>;
  private readonly inflight = new Map<string, Promise<boolean>>();
  private readonly pepper = randomBytes(32).toString('base64');
  /** Compared against for unknown users, at the cost of the file's first entry. */
  private decoy: string;
  private readonly watch: FileWatch;

  constructor(private readonly options: HtpasswdOptions, private readonly log: Logger) {
    this.realm = options.realm;
    // Watched before it is read: an edit right after the read is a change from the watch's first state.
    this.watch = watchPath(options.path, options.reloadIntervalMs ?? 1000, () => this.reload());
    try {
      this.users = this.read();
    } catch (e) {
      this.watch.close();
      throw e;
    }
    this.decoy = decoyFor(this.users);
    this.verdicts = new LRUCache({ max: 10_000, ttl: options.cacheTtlMs ?? 60_000 });
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  get userCount(): number {
    return this.users.size;
  }

  /** True if `password` is the user's. Concurrent checks of the same pair share one bcrypt run. */
  async verify(user: string, password: string): Promise<boolean> {
    const key = hash('sha256', `${this.pepper}\0${user}\0${password}`, 'base64');
    const known = this.verdicts.get(key);
    if (known !== undefined) return known;
    let pending = this.inflight.get(key);
    if (!pending) {
      const users = this.users;
      pending = bcrypt.compare(password, users.get(user) ?? this.decoy)
        .then((ok) => ok && users.has(user))
        .then((ok) => {
          // A reload while bcrypt ran cleared the cache; do not refill it with a stale verdict.
          if (users === this.users) this.verdicts.set(key, ok);
          return ok;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  close(): void {
    this.watch.close();
  }

  private read(): Map<string, string> {
    let text: string;
    try {
      text = readFileSync(this.options.path, 'utf8');
    } catch (e) {
      throw new Error(`auth.htpasswd.path: cannot read ${this.options.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return parseHtpasswd(text, this.options.path);
  }

  private reload(): void {
    try {
      this.users = this.read();
      this.decoy = decoyFor(this.users);
      this.verdicts.clear();
      this.log.info({ file: this.options.path, users: this.users.size }, 'htpasswd file reloaded');
    } catch (e) {
      this.log.error({ file: this.options.path, err: (e as Error).message }, 'htpasswd file not reloaded; the previous users stay in force');
    }
  }
}

function decoyFor(users: Map<string, string>): string {
  const first = users.values().next().value;
  // Capped: a decoy costlier than 12 would make start-up and reloads slow for no real gain.
  const cost = first ? Math.min(Number(BCRYPT.exec(first)![1]), 12) : 10;
  return bcrypt.hashSync(randomBytes(16).toString('hex'), bcrypt.genSaltSync(cost));
}
