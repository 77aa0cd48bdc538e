/**
 * The public keys signatures are checked against, in named sets (`policy.keys`). A file holds one
 * or more PEM public keys, ECDSA P-256 or RSA (2048 bits or more): what `cosign generate-key-pair`,
 * `openssl ec -pubout` and KMS exports write. A private key is refused: it has no business on the
 * registry host. Files are re-read when they change (as htpasswd is); a broken edit is logged and
 * the previous keys stay in force; every change calls `onChange` so remembered results are dropped.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { watchPath, type FileWatch } from '../auth/watch.js';

export interface PublicKey {
  key: KeyObject;
  /** The file it came from (reports and logs name it). */
  file: string;
  /** sha256 of the DER public key, hex: a stable name for the key whatever file holds it. */
  id: string;
  algorithm: 'ecdsa-p256' | 'rsa';
}

export class KeyFileError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'KeyFileError';
  }
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** Every public key in a PEM text. */
export function parsePublicKeys(text: string, file: string): PublicKey[] {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (blocks.length === 0) throw new KeyFileError(file, 'no PEM block (expected -----BEGIN PUBLIC KEY-----)');
  return blocks.map((m) => {
    const label = m[1]!;
    if (label.includes('PRIVATE')) throw new KeyFileError(file, `holds a ${label}; give the public key (cosign.pub, openssl ec -pubout)`);
    if (label !== 'PUBLIC KEY' && label !== 'RSA PUBLIC KEY') throw new KeyFileError(file, `a "${label}" block is not a public key`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: m[0], format: 'pem', ...(label === 'RSA PUBLIC KEY' ? { type: 'pkcs1' as const } : {}) });
    } catch (e) {
      throw new KeyFileError(file, `unreadable public key (${(e as Error).message})`);
    }
    return { key, file, id: createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex'), algorithm: checkAlgorithm(key, file) };
  });
}

function checkAlgorithm(key: KeyObject, file: string): PublicKey['algorithm'] {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve !== 'prime256v1') throw new KeyFileError(file, `an ECDSA key on ${details.namedCurve ?? 'an unknown curve'}; only P-256 is accepted`);
    return 'ecdsa-p256';
  }
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048) throw new KeyFileError(file, `an RSA key of ${details.modulusLength} bits; at least 2048 are needed`);
    return 'rsa';
  }
  throw new KeyFileError(file, `a ${key.asymmetricKeyType} key; only ECDSA P-256 and RSA keys are accepted`);
}

export function readKeyFile(file: string): PublicKey[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new KeyFileError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parsePublicKeys(text, file);
}

export interface KeyRingOptions {
  /** Set name -> files. */
  sets: Readonly<Record<string, readonly string[]>>;
  /** How often files are checked for changes (default 1 s; 0: never). */
  reloadIntervalMs?: number;
}

/** The named key sets, kept current with their files. */
export class KeyRing {
  private readonly byFile = new Map<string, PublicKey[]>();
  private readonly watches: FileWatch[] = [];
  /** Bumped whenever a key file is re-read: results computed under an older generation are stale. */
  generation = 0;

  constructor(private readonly options: KeyRingOptions, private readonly log: Logger, private readonly onChange: () => void = () => undefined) {
    const interval = options.reloadIntervalMs ?? 1000;
    for (const [set, files] of Object.entries(options.sets)) {
      for (const file of files) {
        if (this.byFile.has(file)) continue;
        // Watched before it is read: an edit right after the read is a change from the watch's first state.
        if (interval > 0) this.watches.push(watchPath(file, interval, () => this.reload(file)));
        try {
          this.byFile.set(file, readKeyFile(file));
        } catch (e) {
          for (const w of this.watches) w.close();
          throw new Error(`policy.keys.${set}: ${(e as Error).message}`);
        }
      }
    }
  }

  /** The keys of the named sets, each tagged with its set. */
  keysOf(sets: readonly string[]): Array<PublicKey & { set: string }> {
    return sets.flatMap((set) => (this.options.sets[set] ?? []).flatMap((file) => (this.byFile.get(file) ?? []).map((k) => ({ ...k, set }))));
  }

  close(): void {
    for (const w of this.watches) w.close();
  }

  private reload(file: string): void {
    try {
      const keys = readKeyFile(file);
      this.byFile.set(file, keys);
      this.log.info({ file, keys: keys.length }, 'signature policy key file reloaded');
    } catch (e) {
      this.log.error({ file, err: (e as Error).message }, 'signature policy key file not reloaded; the previous keys stay in force');
      return;
    }
    this.generation++;
    this.onChange();
  }
}
