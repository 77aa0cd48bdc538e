/**
 * Azure Blob Storage StorageDriver on @azure/storage-blob. Driver path "/a/b" is the block blob
 * "<rootdirectory>/a/b" in the configured container.
 *
 * Files are block blobs. A writer stages blocks of `chunkSize` and commits the block list at
 * commit(): until then the blob at the path is untouched (staged blocks are invisible, and Azure
 * drops uncommitted blocks by itself). An append commits the old blob's committed blocks plus the
 * new ones, so it copies nothing; a blob written in one Put Blob (putContent) has no block list
 * and is re-staged once from its own bytes. Moves are a server-side copy, then a delete. The SDK
 * retries 5xx, timeouts and network errors with exponential backoff; what is left becomes a
 * DriverError, which clients see as 503 UNAVAILABLE.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  BlobSASPermissions, BlobServiceClient, generateBlobSASQueryParameters, StorageRetryPolicyType,
  StorageSharedKeyCredential, type BlockBlobClient, type ContainerClient,
} from '@azure/storage-blob';
import {
  DriverError, InvalidOffsetError, PathNotFoundError, StorageError,
  type FileInfo, type FileWriter, type ReadOptions, type RedirectOptions, type StorageDriver,
} from '../driver.js';
import { childPrefix, forEachLimit, keyFor, MiB, normaliseRoot, once, PartBuffer, pathFor } from './object-store.js';
import { checkStore } from './store-check.js';

export interface AzureDriverOptions {
  accountName: string;
  accountKey: string;
  container: string;
  /** Domain of the public endpoints (default core.windows.net). */
  realm?: string;
  /** Blob service URL for non-public endpoints, e.g. Azurite's http://127.0.0.1:10000/devstoreaccount1. */
  serviceUrl?: string;
  rootDirectory?: string;
  /** Block size (default 4 MiB). */
  chunkSize?: number;
  redirectExpirySeconds?: number;
  /** Blobs per list page (default 5000, the Azure maximum). */
  listPageSize?: number;
}

export class AzureDriver implements StorageDriver {
  readonly name = 'azure';
  readonly readsWhileWriting = false;
  private readonly root: string;
  private readonly container: ContainerClient;
  private readonly credential: StorageSharedKeyCredential;
  private readonly chunkSize: number;
  private readonly redirectExpiry: number;
  private readonly pageSize: number;
  /** The blob service URL, for start-up errors. */
  private readonly endpoint: string;

  constructor(private readonly options: AzureDriverOptions) {
    this.root = normaliseRoot(options.rootDirectory);
    this.credential = new StorageSharedKeyCredential(options.accountName, options.accountKey);
    this.endpoint = options.serviceUrl ?? `https://${options.accountName}.blob.${options.realm ?? 'core.windows.net'}`;
    const service = new BlobServiceClient(this.endpoint, this.credential, {
      retryOptions: { retryPolicyType: StorageRetryPolicyType.EXPONENTIAL, maxTries: 4, retryDelayInMs: 200, maxRetryDelayInMs: 5000, tryTimeoutInMs: 120_000 },
      keepAliveOptions: { enable: true },
    });
    this.container = service.getContainerClient(options.container);
    this.chunkSize = options.chunkSize ?? 4 * MiB;
    this.redirectExpiry = options.redirectExpirySeconds ?? 20 * 60;
    this.pageSize = options.listPageSize ?? 5000;
  }

  /**
   * Creates the container when it is missing, as registry:2's azure driver does when it starts;
   * this also proves the endpoint answers and takes the account key.
   */
  async check(): Promise<void> {
    await checkStore(this.name, `${this.endpoint} container "${this.options.container}"`,
      (abortSignal) => this.container.createIfNotExists({ abortSignal }));
  }

  private blob(path: string): BlockBlobClient {
    const key = keyFor(this.root, path);
    if (key === '') throw new PathNotFoundError('the root is not a file', path);
    return this.container.getBlockBlobClient(key);
  }

  private wrap(e: unknown, path: string): Error {
    if (e instanceof StorageError) return e;
    const err = e as { name?: string; statusCode?: number; code?: string; message?: string };
    if (err?.statusCode === 404) return new PathNotFoundError('path not found', path, { cause: e });
    if (err?.name === 'AbortError') return e as Error;
    return new DriverError(`azure: ${err?.code ?? err?.name ?? 'error'}: ${(err?.message ?? String(e)).split('\n')[0]}`, path, { cause: e });
  }

  private async props(blob: BlockBlobClient): Promise<{ size: number; modTime: Date } | undefined> {
    try {
      const p = await blob.getProperties();
      return { size: p.contentLength ?? 0, modTime: p.lastModified ?? new Date() };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw e;
    }
  }

  async stat(path: string): Promise<FileInfo> {
    const key = keyFor(this.root, path);
    try {
      const file = key === '' ? undefined : await this.props(this.container.getBlockBlobClient(key));
      if (file) return { path, size: file.size, modTime: file.modTime, isDir: false };
      const page = await this.container.listBlobsFlat({ prefix: childPrefix(key) }).byPage({ maxPageSize: 1 }).next();
      if (!page.done && page.value.segment.blobItems.length > 0) return { path, size: 0, modTime: new Date(), isDir: true };
    } catch (e) {
      throw this.wrap(e, path);
    }
    throw new PathNotFoundError('path not found', path);
  }

  async getContent(path: string): Promise<Buffer> {
    try {
      return await this.blob(path).downloadToBuffer();
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    try {
      const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      await this.blob(path).upload(body, body.length);
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    const blob = this.blob(path);
    const offset = options.offset ?? 0;
    try {
      const file = await this.props(blob);
      if (!file) throw new PathNotFoundError('path not found', path);
      if (offset > file.size) throw new InvalidOffsetError(`offset ${offset} beyond size ${file.size}`, path);
      const length = Math.min(file.size - offset, options.length ?? Number.POSITIVE_INFINITY);
      if (length === 0) return Readable.from([]);
      const r = await blob.download(offset, length, options.signal ? { abortSignal: options.signal } : {});
      return r.readableStreamBody as Readable;
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async writer(path: string, options: { append?: boolean } = {}): Promise<FileWriter> {
    const blob = this.blob(path);
    let existing = 0;
    let committed: string[] = [];
    if (options.append) {
      try {
        const file = await this.props(blob);
        existing = file?.size ?? 0;
        if (existing > 0) {
          const list = await blob.getBlockList('committed');
          const blocks = list.committedBlocks ?? [];
          const covered = blocks.reduce((n, b) => n + b.size, 0);
          if (covered === existing) committed = blocks.map((b) => b.name);
          else committed = await this.restage(blob, existing);
        }
      } catch (e) {
        throw this.wrap(e, path);
      }
    }
    return new AzureWriter(blob, path, existing, committed, this.chunkSize).fileWriter();
  }

  /** Stages a blob's own bytes as blocks (a blob from Put Blob has no block list to extend). */
  private async restage(blob: BlockBlobClient, size: number): Promise<string[]> {
    const ids: string[] = [];
    const prefix = randomBytes(12).toString('hex');
    for (let offset = 0; offset < size; offset += this.chunkSize) {
      const length = Math.min(this.chunkSize, size - offset);
      const data = await blob.downloadToBuffer(offset, length);
      const id = blockId(prefix, ids.length);
      await blob.stageBlock(id, data, data.length);
      ids.push(id);
    }
    return ids;
  }

  async list(path: string): Promise<string[]> {
    const prefix = childPrefix(keyFor(this.root, path));
    const out = new Set<string>();
    try {
      for await (const page of this.container.listBlobsByHierarchy('/', { prefix }).byPage({ maxPageSize: this.pageSize })) {
        for (const p of page.segment.blobPrefixes ?? []) out.add(pathFor(this.root, p.name));
        for (const b of page.segment.blobItems) out.add(pathFor(this.root, b.name));
      }
    } catch (e) {
      throw this.wrap(e, path);
    }
    if (out.size === 0) throw new PathNotFoundError('not a directory', path);
    return [...out].sort();
  }

  async move(source: string, dest: string): Promise<void> {
    const from = this.blob(source);
    const to = this.blob(dest);
    try {
      if (!(await this.props(from))) throw new PathNotFoundError('path not found', source);
      const poller = await to.beginCopyFromURL(from.url, { intervalInMs: 200 });
      const result = await poller.pollUntilDone();
      if (result.copyStatus && result.copyStatus !== 'success') throw new DriverError(`azure: copy ended ${result.copyStatus}`, source);
      await from.delete();
    } catch (e) {
      throw this.wrap(e, source);
    }
  }

  async delete(path: string): Promise<void> {
    const key = keyFor(this.root, path);
    const names: string[] = [];
    try {
      if (key !== '' && await this.props(this.container.getBlockBlobClient(key))) names.push(key);
      for await (const page of this.container.listBlobsFlat({ prefix: childPrefix(key) }).byPage({ maxPageSize: this.pageSize })) {
        for (const b of page.segment.blobItems) names.push(b.name);
      }
      await forEachLimit(names, 16, async (name) => {
        await this.container.getBlockBlobClient(name).deleteIfExists();
      });
    } catch (e) {
      throw this.wrap(e, path);
    }
    if (names.length === 0) throw new PathNotFoundError('path not found', path);
  }

  async redirectURL(path: string, _options: RedirectOptions): Promise<string> {
    const blob = this.blob(path);
    const sas = generateBlobSASQueryParameters({
      containerName: this.options.container,
      blobName: blob.name,
      permissions: BlobSASPermissions.parse('r'),
      startsOn: new Date(Date.now() - 5 * 60_000),
      expiresOn: new Date(Date.now() + this.redirectExpiry * 1000),
    }, this.credential);
    return `${blob.url}?${sas.toString()}`;
  }
}

/** Block IDs of one blob must all have the same length: 24 hex characters + 8 digits, base64. */
function blockId(prefix: string, n: number): string {
  return Buffer.from(`${prefix}${String(n).padStart(8, '0')}`).toString('base64');
}

class AzureWriter {
  private readonly buffer: PartBuffer;
  private readonly prefix = randomBytes(12).toString('hex');
  private readonly staged: string[] = [];

  constructor(private readonly blob: BlockBlobClient, private readonly path: string, private readonly existing: number,
    private readonly committed: string[], chunkSize: number) {
    this.buffer = new PartBuffer(chunkSize, (part, i) => this.stage(part, i));
  }

  private async stage(part: Buffer, index: number): Promise<void> {
    const id = blockId(this.prefix, index);
    await this.blob.stageBlock(id, part, part.length);
    this.staged[index] = id;
  }

  fileWriter(): FileWriter {
    const commit = once(async () => {
      try {
        await this.buffer.end();
        const tail = this.buffer.takeTail();
        if (tail.length > 0) await this.stage(tail, this.buffer.nextIndex);
        if (this.existing > 0 && this.staged.length === 0) return;
        await this.blob.commitBlockList([...this.committed, ...this.staged]);
      } catch (e) {
        throw e instanceof StorageError ? e : new DriverError(`azure: ${(e as Error).message.split('\n')[0]}`, this.path, { cause: e });
      }
    });
    const cancel = once(async () => {
      this.buffer.stream.destroy();
      await this.buffer.settled().catch(() => undefined);
      // Staged blocks are never committed; Azure discards them (and deleting the blob does too).
      if (this.existing === 0) await this.blob.deleteIfExists().catch(() => undefined);
    });
    return { stream: this.buffer.stream, size: () => this.existing + this.buffer.accepted, commit, cancel };
  }
}
