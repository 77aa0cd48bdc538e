/**
 * What an import reads: an OCI image layout directory (ours, skopeo's `oci:`, any other tool's),
 * or a tar of one, whole or in parts. Either way it is scanned once, in order: every blob is
 * offered to the importer, which reads it (to verify and store) or lets it pass; index.json and
 * oci-layout are kept. Damage (a truncated part, a tar that stops making sense, a part whose
 * sha256 differs from SHA256SUMS) ends up in `problems`, never as an exception.
 */
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import tar from 'tar-stream';
import type { Digest } from '../oci/digest.js';
import { digestOfBlobPath, INDEX_FILE, LAYOUT_FILE } from './layout.js';
import { counted } from './progress.js';
import { findParts, readParts, readSums } from './parts.js';

export type BlobVisitor = (digest: Digest, size: number, open: () => AsyncIterable<Buffer>) => Promise<void>;

export interface ScanResult { index?: Buffer; layout?: Buffer; problems: string[] }

export interface BundleSource {
  readonly description: string;
  /** Bytes the scan reads at most (for progress). */
  totalBytes(): Promise<number>;
  scan(visit: BlobVisitor, onBytes?: (n: number) => void): Promise<ScanResult>;
}

const MAX_META_BYTES = 16 * 1024 * 1024;

export async function openSource(path: string): Promise<BundleSource> {
  const s = await stat(path).catch(() => undefined);
  if (s?.isDirectory()) return new DirSource(path);
  const parts = await findParts(path);
  if (parts.length === 0) throw new Error(`${path}: no such bundle (a directory, a .tar, or .tar.000 parts)`);
  return new TarSource(parts);
}

class DirSource implements BundleSource {
  readonly description: string;
  constructor(private readonly dir: string) { this.description = `directory ${dir}`; }

  private async blobFiles(): Promise<Array<{ digest: Digest; path: string; size: number }>> {
    const out = [];
    for (const alg of await readdir(join(this.dir, 'blobs')).catch(() => [] as string[])) {
      for (const hex of await readdir(join(this.dir, 'blobs', alg)).catch(() => [] as string[])) {
        const digest = digestOfBlobPath(`blobs/${alg}/${hex}`);
        if (!digest) continue;
        const path = join(this.dir, 'blobs', alg, hex);
        const s = await stat(path);
        if (s.isFile()) out.push({ digest, path, size: s.size });
      }
    }
    return out;
  }

  async totalBytes(): Promise<number> {
    return (await this.blobFiles()).reduce((n, b) => n + b.size, 0);
  }

  async scan(visit: BlobVisitor, onBytes?: (n: number) => void): Promise<ScanResult> {
    const problems: string[] = [];
    const read = (name: string) => readFile(join(this.dir, name)).catch(() => undefined);
    const [index, layout] = await Promise.all([read(INDEX_FILE), read(LAYOUT_FILE)]);
    for (const b of await this.blobFiles()) {
      let opened = false;
      await visit(b.digest, b.size, () => {
        opened = true;
        const stream = createReadStream(b.path, { highWaterMark: 1024 * 1024 });
        return onBytes ? counted(stream, onBytes) : stream;
      });
      if (!opened) onBytes?.(b.size);
    }
    return { problems, ...(index ? { index } : {}), ...(layout ? { layout } : {}) };
  }
}

class TarSource implements BundleSource {
  readonly description: string;
  constructor(private readonly parts: string[]) {
    this.description = parts.length === 1 ? `tar ${parts[0]}` : `tar in ${parts.length} parts (${parts[0]} ...)`;
  }

  async totalBytes(): Promise<number> {
    let n = 0;
    for (const p of this.parts) n += (await stat(p)).size;
    return n;
  }

  async scan(visit: BlobVisitor, onBytes?: (n: number) => void): Promise<ScanResult> {
    const problems: string[] = [];
    const sums = await readSums(dirname(this.parts[0]!));
    const { stream, checks } = readParts(this.parts, onBytes, sums);
    const extract = tar.extract();
    stream.on('error', (e) => extract.destroy(e));
    stream.pipe(extract);
    let index: Buffer | undefined;
    let layout: Buffer | undefined;
    try {
      for await (const entry of extract) {
        const name = entry.header.name.replace(/^\.\//, '');
        const digest = entry.header.type === 'file' ? digestOfBlobPath(name) : undefined;
        if (digest) {
          await visit(digest, entry.header.size ?? 0, () => entry as AsyncIterable<Buffer>);
          entry.resume(); // whatever the visitor left unread
        } else if ((name === INDEX_FILE || name === LAYOUT_FILE) && (entry.header.size ?? 0) <= MAX_META_BYTES) {
          const parts: Buffer[] = [];
          for await (const c of entry) parts.push(c as Buffer);
          if (name === INDEX_FILE) index = Buffer.concat(parts); else layout = Buffer.concat(parts);
        } else {
          entry.resume();
        }
      }
    } catch (e) {
      problems.push(`the tar stream broke off: ${(e as Error).message}`);
      stream.destroy();
    }
    // Parts not read to their end (the tar broke off earlier) are hashed now, to name the bad one.
    for (const file of this.parts.slice(checks.length)) {
      const hash = createHash('sha256');
      let size = 0;
      for await (const c of createReadStream(file) as AsyncIterable<Buffer>) { hash.update(c); size += c.length; }
      const expected = sums.get(file.slice(file.lastIndexOf('/') + 1));
      checks.push({ file, actual: hash.digest('hex'), size, ...(expected ? { expected } : {}) });
    }
    for (const c of checks) {
      if (c.expected && c.expected !== c.actual) problems.push(`${c.file}: sha256 differs from SHA256SUMS (damaged or truncated: ${c.size} bytes)`);
    }
    return { problems, ...(index ? { index } : {}), ...(layout ? { layout } : {}) };
  }
}
