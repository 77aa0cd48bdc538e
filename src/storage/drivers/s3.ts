/**
 * S3 StorageDriver on @aws-sdk/client-s3 (Amazon S3 and S3-compatible stores: Swift's s3api,
 * Aliyun OSS, MinIO, ...). Driver path "/a/b" is the key "<rootdirectory>/a/b".
 *
 * - putContent: one PutObject (atomic).
 * - writer: bytes are buffered into parts of `chunkSize`; a file that stays under one part is one
 *   PutObject at commit, anything bigger a multipart upload completed at commit. Until then
 *   nothing is visible at the key; cancel (or a crash) leaves at most an incomplete multipart
 *   upload, which delete() of the path or of a directory above it aborts.
 * - append: S3 cannot append, so the new object starts with the old one: server-side
 *   UploadPartCopy of the existing object (when it is at least the minimum part size) or its
 *   bytes read into the first part (when smaller), then the new bytes, completed at commit.
 * - move: CopyObject (or a multipart UploadPartCopy above multipartcopythresholdsize), then
 *   DeleteObject: the destination appears whole or not at all.
 * The SDK retries throttling, 5xx and network errors with backoff; anything left becomes a
 * DriverError, which clients see as 503 UNAVAILABLE.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand,
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand,
  ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand, UploadPartCopyCommand,
  type CompletedPart, type S3ClientConfig, type ServerSideEncryption, type StorageClass,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  DriverError, InvalidOffsetError, PathNotFoundError, StorageError,
  type FileInfo, type FileWriter, type ReadOptions, type RedirectOptions, type StorageDriver,
} from '../driver.js';
import { childPrefix, forEachLimit, keyFor, MiB, normaliseRoot, pathFor } from './object-store.js';
import { S3Writer } from './s3-writer.js';
import { checkStore } from './store-check.js';

export interface S3DriverOptions {
  bucket: string;
  region: string;
  /** Endpoint of an S3-compatible store ("https://host:port" or "host:port" with `secure`). */
  regionEndpoint?: string;
  forcePathStyle?: boolean;
  /** Both absent: the SDK's default credential chain (environment, shared files, instance role). */
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  rootDirectory?: string;
  encrypt?: boolean;
  keyId?: string;
  /** https (default) or http for an endpoint given without a scheme. */
  secure?: boolean;
  skipVerify?: boolean;
  /** Multipart part size (default 10 MiB, at least minPartSize). */
  chunkSize?: number;
  multipartCopyChunkSize?: number;
  multipartCopyMaxConcurrency?: number;
  multipartCopyThresholdSize?: number;
  /** STANDARD (default), REDUCED_REDUNDANCY, ... or NONE to send no storage class. */
  storageClass?: string;
  /** The store's smallest allowed part except the last (5 MiB on S3). */
  minPartSize?: number;
  /** Lifetime of presigned redirect URLs (default 20 minutes, as registry:2). */
  redirectExpirySeconds?: number;
  /** Objects per list page (at most 1000, the S3 maximum and default). */
  listPageSize?: number;
  /** The configured driver's name in start-up errors ("oss" for OSS; default "s3"). */
  configName?: string;
}

const MAX_SINGLE_COPY = 5 * 1024 * MiB;

export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly readsWhileWriting = false;
  readonly client: S3Client;
  private readonly root: string;
  private readonly bucket: string;
  private readonly chunkSize: number;
  private readonly minPartSize: number;
  private readonly copyChunkSize: number;
  private readonly copyConcurrency: number;
  private readonly copyThreshold: number;
  private readonly storageClass: StorageClass | undefined;
  private readonly encryption: { ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string };
  private readonly redirectExpiry: number;
  private readonly pageSize: number;
  /** The store's address, for start-up errors. */
  private readonly endpoint: string;

  constructor(private readonly options: S3DriverOptions) {
    this.bucket = options.bucket;
    this.root = normaliseRoot(options.rootDirectory);
    this.minPartSize = options.minPartSize ?? 5 * MiB;
    this.chunkSize = Math.max(options.chunkSize ?? 10 * MiB, this.minPartSize);
    this.copyChunkSize = Math.max(options.multipartCopyChunkSize ?? 32 * MiB, this.minPartSize);
    this.copyConcurrency = options.multipartCopyMaxConcurrency ?? 100;
    this.copyThreshold = options.multipartCopyThresholdSize ?? 32 * MiB;
    const sc = options.storageClass ?? 'STANDARD';
    this.storageClass = sc === 'NONE' ? undefined : sc as StorageClass;
    this.encryption = options.encrypt
      ? (options.keyId ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: options.keyId } : { ServerSideEncryption: 'AES256' })
      : {};
    this.redirectExpiry = options.redirectExpirySeconds ?? 20 * 60;
    this.pageSize = Math.min(options.listPageSize ?? 1000, 1000);
    const secure = options.secure ?? true;
    let endpoint = options.regionEndpoint;
    if (endpoint && !/^https?:\/\//.test(endpoint)) endpoint = `${secure ? 'https' : 'http'}://${endpoint}`;
    const config: S3ClientConfig = {
      region: options.region,
      forcePathStyle: options.forcePathStyle ?? false,
      // Stores other than AWS reject the SDK's default trailing checksums ("aws-chunked is not supported").
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 4,
      requestHandler: new NodeHttpHandler({
        connectionTimeout: 10_000,
        socketTimeout: 60_000,
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: !options.skipVerify }),
      }),
      ...(endpoint ? { endpoint } : {}),
      ...(options.accessKey && options.secretKey
        ? { credentials: { accessKeyId: options.accessKey, secretAccessKey: options.secretKey, ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}) } }
        : {}),
    };
    this.endpoint = endpoint ?? `https://s3.${options.region}.amazonaws.com`;
    this.client = new S3Client(config);
    // DeleteObjects needs Content-MD5 on S3 and on Swift; the SDK no longer sends it on its own.
    this.client.middlewareStack.add((next, context) => async (args) => {
      const request = args.request as { headers: Record<string, string>; body?: unknown };
      if (context.commandName === 'DeleteObjectsCommand' && typeof request.body === 'string') {
        request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
      }
      return next(args);
    }, { step: 'build', name: 'stowageContentMd5' });
  }

  private key(path: string): string {
    return keyFor(this.root, path);
  }

  private wrap(e: unknown, path: string): Error {
    if (e instanceof StorageError) return e;
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    if (err?.name === 'NoSuchKey' || err?.name === 'NotFound' || err?.$metadata?.httpStatusCode === 404) {
      return new PathNotFoundError('path not found', path, { cause: e });
    }
    if (err?.name === 'AbortError') return e as Error;
    return new DriverError(`s3: ${err?.name ?? 'error'}: ${err?.message ?? String(e)}`, path, { cause: e });
  }

  /**
   * Lists one key under the root: a GET, so a refusal comes with the store's code and message
   * (a HEAD's error has no body). A missing bucket fails too: registry:2 does not create it either.
   */
  async check(): Promise<void> {
    await checkStore(this.options.configName ?? this.name, `${this.endpoint} bucket "${this.bucket}"`, (abortSignal) =>
      this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: childPrefix(this.root), MaxKeys: 1 }), { abortSignal }));
  }

  private async head(key: string): Promise<{ size: number; modTime: Date } | undefined> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: h.ContentLength ?? 0, modTime: h.LastModified ?? new Date() };
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err?.name === 'NotFound' || err?.$metadata?.httpStatusCode === 404) return undefined;
      throw e;
    }
  }

  async stat(path: string): Promise<FileInfo> {
    const key = this.key(path);
    try {
      const file = key === '' ? undefined : await this.head(key);
      if (file) return { path, size: file.size, modTime: file.modTime, isDir: false };
      const l = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: childPrefix(key), MaxKeys: 1 }));
      if ((l.KeyCount ?? 0) > 0) return { path, size: 0, modTime: new Date(), isDir: true };
    } catch (e) {
      throw this.wrap(e, path);
    }
    throw new PathNotFoundError('path not found', path);
  }

  async getContent(path: string): Promise<Buffer> {
    const key = this.key(path);
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    const key = this.key(path);
    try {
      await this.putObject(key, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  private async putObject(key: string, body: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({
      Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length, ContentType: 'application/octet-stream',
      ...this.encryption, ...(this.storageClass ? { StorageClass: this.storageClass } : {}),
    }));
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    const key = this.key(path);
    const offset = options.offset ?? 0;
    if (options.length === 0) {
      await this.stat(path);
      return Readable.from([]);
    }
    const last = options.length === undefined ? '' : String(offset + options.length - 1);
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(offset > 0 || last !== '' ? { Range: `bytes=${offset}-${last}` } : {}) }),
        options.signal ? { abortSignal: options.signal } : {},
      );
      return r.Body as Readable;
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 416) {
        // Past the end, or exactly at it (an empty read, which S3 refuses as a range).
        const file = await this.head(key).catch((he: unknown) => { throw this.wrap(he, path); });
        if (!file) throw new PathNotFoundError('path not found', path);
        if (offset === file.size) return Readable.from([]);
        throw new InvalidOffsetError(`offset ${offset} beyond size ${file.size}`, path);
      }
      throw this.wrap(e, path);
    }
  }

  async writer(path: string, options: { append?: boolean } = {}): Promise<FileWriter> {
    const key = this.key(path);
    let existing = 0;
    let seed: Buffer | undefined;
    if (options.append) {
      try {
        existing = (await this.head(key))?.size ?? 0;
        if (existing > 0 && existing < this.minPartSize) seed = await this.readSmall(key);
      } catch (e) {
        throw this.wrap(e, path);
      }
    }
    return new S3Writer(this, key, path, existing, this.chunkSize, seed).fileWriter();
  }

  /** Starts a multipart upload whose first parts copy `copySize` bytes of the object at `key` server-side. */
  async startMultipart(key: string, copySize: number): Promise<{ uploadId: string; parts: CompletedPart[] }> {
    const created = await this.client.send(new CreateMultipartUploadCommand({
      Bucket: this.bucket, Key: key, ContentType: 'application/octet-stream',
      ...this.encryption, ...(this.storageClass ? { StorageClass: this.storageClass } : {}),
    }));
    const uploadId = created.UploadId!;
    const parts: CompletedPart[] = [];
    if (copySize > 0) {
      try {
        parts.push(...await this.copyParts(key, uploadId, key, copySize));
      } catch (e) {
        await this.abort(key, uploadId);
        throw e;
      }
    }
    return { uploadId, parts };
  }

  /** UploadPartCopy of [0, size) of `source` in ranges of at least the minimum part size, numbered from 1. */
  private async copyParts(dest: string, uploadId: string, source: string, size: number): Promise<CompletedPart[]> {
    const count = Math.max(1, Math.floor(size / this.copyChunkSize));
    const step = Math.ceil(size / count);
    const ranges = Array.from({ length: count }, (_, i) => ({ n: i + 1, start: i * step, end: Math.min(size, (i + 1) * step) - 1 }));
    const parts: CompletedPart[] = [];
    await forEachLimit(ranges, this.copyConcurrency, async ({ n, start, end }) => {
      const r = await this.client.send(new UploadPartCopyCommand({
        Bucket: this.bucket, Key: dest, UploadId: uploadId, PartNumber: n,
        CopySource: encodeURI(`${this.bucket}/${source}`), CopySourceRange: `bytes=${start}-${end}`,
      }));
      parts.push({ PartNumber: n, ETag: r.CopyPartResult!.ETag! });
    });
    return parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
  }

  async uploadPart(key: string, uploadId: string, n: number, body: Buffer): Promise<CompletedPart> {
    const r = await this.client.send(new UploadPartCommand({
      Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: body, ContentLength: body.length,
    }));
    return { PartNumber: n, ETag: r.ETag! };
  }

  async complete(key: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    await this.client.send(new CompleteMultipartUploadCommand({
      Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts },
    }));
  }

  async abort(key: string, uploadId: string): Promise<void> {
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
  }

  async readSmall(key: string): Promise<Buffer> {
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  }

  put(key: string, body: Buffer): Promise<void> {
    return this.putObject(key, body);
  }

  get minimumPartSize(): number {
    return this.minPartSize;
  }

  async list(path: string): Promise<string[]> {
    const key = this.key(path);
    const prefix = childPrefix(key);
    const out = new Set<string>();
    try {
      let token: string | undefined;
      do {
        const r = await this.client.send(new ListObjectsV2Command({
          Bucket: this.bucket, Prefix: prefix, Delimiter: '/', MaxKeys: this.pageSize, ...(token ? { ContinuationToken: token } : {}),
        }));
        for (const p of r.CommonPrefixes ?? []) out.add(pathFor(this.root, p.Prefix!));
        for (const o of r.Contents ?? []) if (o.Key !== prefix) out.add(pathFor(this.root, o.Key!));
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      throw this.wrap(e, path);
    }
    if (out.size === 0) throw new PathNotFoundError('not a directory', path);
    return [...out].sort();
  }

  async move(source: string, dest: string): Promise<void> {
    const from = this.key(source);
    const to = this.key(dest);
    try {
      const file = await this.head(from);
      if (!file) throw new PathNotFoundError('path not found', source);
      if (file.size <= this.copyThreshold && file.size <= MAX_SINGLE_COPY) {
        await this.client.send(new CopyObjectCommand({
          Bucket: this.bucket, Key: to, CopySource: encodeURI(`${this.bucket}/${from}`),
          ...this.encryption, ...(this.storageClass ? { StorageClass: this.storageClass } : {}),
        }));
      } else {
        const created = await this.client.send(new CreateMultipartUploadCommand({
          Bucket: this.bucket, Key: to, ContentType: 'application/octet-stream',
          ...this.encryption, ...(this.storageClass ? { StorageClass: this.storageClass } : {}),
        }));
        try {
          await this.complete(to, created.UploadId!, await this.copyParts(to, created.UploadId!, from, file.size));
        } catch (e) {
          await this.abort(to, created.UploadId!);
          throw e;
        }
      }
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: from }));
    } catch (e) {
      throw this.wrap(e, source);
    }
  }

  async delete(path: string): Promise<void> {
    const key = this.key(path);
    let found = false;
    try {
      const keys: string[] = [];
      if (key !== '' && await this.head(key)) keys.push(key);
      let token: string | undefined;
      do {
        const r = await this.client.send(new ListObjectsV2Command({
          Bucket: this.bucket, Prefix: childPrefix(key), MaxKeys: 1000, ...(token ? { ContinuationToken: token } : {}),
        }));
        for (const o of r.Contents ?? []) keys.push(o.Key!);
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      found = keys.length > 0;
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        const r = await this.client.send(new DeleteObjectsCommand({
          Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }));
        const failed = (r.Errors ?? []).filter((x) => x.Code !== 'NoSuchKey');
        if (failed.length > 0) throw new DriverError(`s3: delete failed for ${failed.length} objects: ${failed[0]!.Code}`, path);
      }
      found = (await this.abortUploadsUnder(key)) || found;
    } catch (e) {
      throw this.wrap(e, path);
    }
    if (!found) throw new PathNotFoundError('path not found', path);
  }

  /** Aborts incomplete multipart uploads at key or under it (abandoned writers). */
  private async abortUploadsUnder(key: string): Promise<boolean> {
    let any = false;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const r = await this.client.send(new ListMultipartUploadsCommand({
        Bucket: this.bucket, Prefix: key, ...(keyMarker ? { KeyMarker: keyMarker } : {}), ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
      }));
      for (const u of r.Uploads ?? []) {
        if (u.Key !== key && !u.Key!.startsWith(childPrefix(key))) continue;
        any = true;
        await this.abort(u.Key!, u.UploadId!);
      }
      if (!r.IsTruncated) return any;
      keyMarker = r.NextKeyMarker;
      uploadIdMarker = r.NextUploadIdMarker;
    }
  }

  async redirectURL(path: string, options: RedirectOptions): Promise<string> {
    const key = this.key(path);
    const command = options.method === 'HEAD'
      ? new HeadObjectCommand({ Bucket: this.bucket, Key: key })
      : new GetObjectCommand({ Bucket: this.bucket, Key: key });
    return getSignedUrl(this.client, command, { expiresIn: this.redirectExpiry });
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
