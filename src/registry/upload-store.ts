/**
 * Upload sessions (OCI "push"): bytes are appended to _uploads/<uuid>/data and hashed as they
 * arrive; on completion the digest is checked and the file is moved into blobs/ atomically.
 * The running hash lives in memory; after a restart (or a failed chunk) completion re-reads the
 * file, so a session survives both.
 */
import { randomUUID, type Hash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../errors.js';
import type { MetadataIndex } from '../metadata/port.js';
import { createDigester, digestAlgorithm, digestFromHash, type Digest } from '../oci/digest.js';
import type { RepoName } from '../oci/reference.js';
import { isPathNotFound, StorageFullError, type StorageDriver } from '../storage/driver.js';
import { uploadDataPath, uploadDir, uploadStartedAtPath } from '../storage/layout.js';
import { BLOB_MEDIA_TYPE, type BlobStore } from './blob-store.js';
import type { EventSink } from '../notify/events.js';
import type { LocalRepositories } from './local-repositories.js';
import { deleteIfExists } from './links.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface LiveState { hash: Hash; size: number; busy: boolean }

export interface ChunkOptions {
  /** Content-Range start/end (inclusive) when the client sent one. */
  range?: { start: number; end: number };
  /** Content-Length when the client sent one. */
  length?: number;
}

export class UploadStore {
  private readonly live = new Map<string, LiveState>();

  constructor(
    private readonly storage: StorageDriver,
    private readonly metadata: MetadataIndex,
    private readonly blobs: BlobStore,
    private readonly local: LocalRepositories,
    private readonly events: EventSink,
  ) {}

  async start(repo: RepoName): Promise<string> {
    await this.local.mark(repo);
    const uuid = randomUUID();
    const startedAt = new Date();
    await this.storage.putContent(uploadStartedAtPath(repo, uuid), Buffer.from(startedAt.toISOString()));
    const writer = await this.storage.writer(uploadDataPath(repo, uuid));
    await writer.commit();
    await this.metadata.write((w) => w.addUpload(uuid, repo, startedAt.getTime()));
    this.live.set(uuid, { hash: createDigester(), size: 0, busy: false });
    return uuid;
  }

  /** Current size of the session; BLOB_UPLOAD_UNKNOWN if there is none. */
  async size(repo: RepoName, uuid: string): Promise<number> {
    if (!UUID_RE.test(uuid)) throw unknownUpload(uuid);
    try {
      return (await this.storage.stat(uploadDataPath(repo, uuid))).size;
    } catch (e) {
      if (isPathNotFound(e)) throw unknownUpload(uuid);
      throw e;
    }
  }

  /** Appends a request body; returns the new size. */
  async append(repo: RepoName, uuid: string, body: Readable, options: ChunkOptions = {}): Promise<number> {
    const current = await this.size(repo, uuid);
    const { range, length } = options;
    if (range) {
      if (range.start !== current || range.end < range.start) {
        body.resume();
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'chunk out of order', {
          status: 416,
          detail: { expectedStart: current, got: `${range.start}-${range.end}` },
          headers: { Range: rangeHeader(current), 'Docker-Upload-UUID': uuid },
        });
      }
      if (length !== undefined && length !== range.end - range.start + 1) {
        body.resume();
        throw new RegistryError('SIZE_INVALID', 'Content-Range does not match Content-Length');
      }
    }
    let state = this.live.get(uuid);
    if (state && (state.size !== current || state.busy)) {
      this.live.delete(uuid);
      state = undefined;
    }
    if (state) state.busy = true;
    const writer = await this.storage.writer(uploadDataPath(repo, uuid), { append: true });
    let received = 0;
    const hash = state?.hash;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        hash?.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, counter, writer.stream);
      await writer.commit();
    } catch (e) {
      if (e instanceof StorageFullError) {
        // A full disk: nothing partial stays behind to fill it further; the client starts over.
        await writer.cancel().catch(() => undefined);
        await this.remove(repo, uuid).catch(() => undefined);
        throw e;
      }
      // The file may hold part of this chunk: keep it (the client can ask for the offset and
      // resume), but the running hash no longer matches, so completion will re-read the file.
      this.live.delete(uuid);
      await writer.commit().catch(() => undefined);
      throw e;
    }
    const expected = length ?? (range ? range.end - range.start + 1 : undefined);
    if (expected !== undefined && expected !== received) {
      this.live.delete(uuid);
      throw new RegistryError('SIZE_INVALID', 'received fewer bytes than announced', { detail: { expected, received } });
    }
    if (state) {
      state.size = current + received;
      state.busy = false;
    }
    return current + received;
  }

  /** Verifies the session's bytes against digest and commits the blob into repo. */
  async complete(repo: RepoName, uuid: string, digest: Digest): Promise<number> {
    const size = await this.size(repo, uuid);
    const actual = await this.digestOf(repo, uuid, size, digest);
    if (actual !== digest) {
      throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', {
        detail: { expected: digest, actual },
      });
    }
    await this.blobs.commitVerified(uploadDataPath(repo, uuid), digest, size, 'local', undefined,
      (w) => this.events.record({ action: 'push', target: { kind: 'blob', repository: repo, digest, size, mediaType: BLOB_MEDIA_TYPE } }, w));
    await this.blobs.link(repo, digest);
    await this.remove(repo, uuid);
    return size;
  }

  async cancel(repo: RepoName, uuid: string): Promise<void> {
    await this.size(repo, uuid);
    await this.remove(repo, uuid);
  }

  /** Removes a session and its bytes (upload purging: see lifecycle/upload-purge.ts). */
  discard(repo: RepoName, uuid: string): Promise<void> {
    return this.remove(repo, uuid);
  }

  private async remove(repo: RepoName, uuid: string): Promise<void> {
    this.live.delete(uuid);
    await deleteIfExists(this.storage, uploadDir(repo, uuid));
    await this.metadata.write((w) => w.deleteUpload(uuid));
  }

  private async digestOf(repo: RepoName, uuid: string, size: number, wanted: Digest): Promise<Digest> {
    const algorithm = digestAlgorithm(wanted);
    const state = this.live.get(uuid);
    if (state && !state.busy && state.size === size && algorithm === 'sha256') {
      this.live.delete(uuid);
      return digestFromHash('sha256', state.hash);
    }
    const hash = createDigester(algorithm);
    const stream = await this.storage.reader(uploadDataPath(repo, uuid));
    for await (const chunk of stream) hash.update(chunk as Buffer);
    return digestFromHash(algorithm, hash);
  }
}

export const rangeHeader = (size: number): string => `0-${size > 0 ? size - 1 : 0}`;

function unknownUpload(uuid: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { detail: { uuid: uuid.slice(0, 100) } });
}
