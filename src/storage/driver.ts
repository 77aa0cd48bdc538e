/**
 * The StorageDriver port: a dumb byte store addressed by slash-separated paths, shaped like
 * distribution's storagedriver. Registry semantics (blobs, links, tags) live in registry/, never
 * here. Every driver must pass test/storage/conformance.ts.
 *
 * Paths are absolute ("/docker/registry/v2/..."), made of segments matching [A-Za-z0-9._-]+
 * that are neither "." nor ".."; anything else is an InvalidPathError before any I/O happens.
 */
import type { Readable, Writable } from 'node:stream';

export interface FileInfo {
  path: string;
  size: number;
  modTime: Date;
  isDir: boolean;
}

export interface ReadOptions {
  /** First byte to read (default 0). Past the end of the file: InvalidOffsetError. */
  offset?: number;
  /** How many bytes to read at most (default: to the end). */
  length?: number;
  signal?: AbortSignal;
}

export interface FileWriter {
  /** Bytes go here; the writer's size grows as they are written. */
  readonly stream: Writable;
  /** Bytes in the file so far, including what was there before an append. */
  size(): number;
  /** Ends the stream, makes the bytes durable (fsync) and closes. The path keeps the data. */
  commit(): Promise<void>;
  /** Ends the stream and removes whatever this writer wrote. */
  cancel(): Promise<void>;
}

export interface RedirectOptions {
  /** HTTP method the URL is for (GET or HEAD). */
  method: 'GET' | 'HEAD';
}

export interface StorageDriver {
  readonly name: string;
  /**
   * False when a file being written cannot be read until its writer commits (object stores).
   * A pull-through fill then serves clients that fall behind its in-memory window only once the
   * blob is committed. Default (undefined): readable while written, as on a filesystem.
   */
  readonly readsWhileWriting?: boolean;
  stat(path: string): Promise<FileInfo>;
  getContent(path: string): Promise<Buffer>;
  /** Atomically replaces the content at path: readers see the old bytes or the new, never a mix. */
  putContent(path: string, data: Uint8Array): Promise<void>;
  reader(path: string, options?: ReadOptions): Promise<Readable>;
  /** Opens path for writing; append=false truncates, append=true continues after the current end. */
  writer(path: string, options?: { append?: boolean }): Promise<FileWriter>;
  /** Full paths of the direct children of a directory, sorted. PathNotFoundError if missing. */
  list(path: string): Promise<string[]>;
  /** Atomically moves a file to dest (replacing dest), creating parent directories. */
  move(source: string, dest: string): Promise<void>;
  /** Deletes a file or a whole directory tree. PathNotFoundError if missing. */
  delete(path: string): Promise<void>;
  /**
   * A URL from which a client can GET the file straight from the store (presigned S3 URL, Azure
   * SAS, Swift temp URL), or undefined when the driver cannot give one for this path.
   */
  redirectURL?(path: string, options: RedirectOptions): Promise<string | undefined>;
  /**
   * Run once at start-up (createDriver): proves the store answers and takes the credentials, and
   * creates what registry:2 creates at start (the azure and swift container, the filesystem
   * root). Rejects with a StoreCheckError carrying the store's own error on one line.
   */
  check(): Promise<void>;
  /** Releases resources (timers, handles). */
  close?(): Promise<void>;
}

/**
 * The store cannot be used at start-up (unreachable, credentials refused, no such bucket): one
 * line for the operator, e.g. `storage: s3 at http://127.0.0.1:8080 bucket "reg": InvalidAccessKeyId: ...`.
 */
export class StoreCheckError extends Error {
  constructor(readonly driver: string, readonly where: string, readonly reason: string, options?: { cause?: unknown }) {
    super(`storage: ${driver} at ${where}: ${reason}`, options);
    this.name = 'StoreCheckError';
  }
}

export class StorageError extends Error {
  constructor(message: string, readonly path: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
export class PathNotFoundError extends StorageError {}
export class InvalidPathError extends StorageError {}
export class InvalidOffsetError extends StorageError {}
export class DriverError extends StorageError {}
/** No space left (ENOSPC, EDQUOT): the request fails cleanly, and the cache makes room. */
export class StorageFullError extends DriverError {}

const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** Throws InvalidPathError unless path is a well-formed absolute driver path ("/" is allowed). */
export function checkPath(path: string): void {
  if (path === '/') return;
  if (!path.startsWith('/') || path.endsWith('/')) throw new InvalidPathError('invalid path', path);
  const segments = path.slice(1).split('/');
  for (const s of segments) {
    if (!SEGMENT_RE.test(s) || s === '.' || s === '..') throw new InvalidPathError('invalid path', path);
  }
}

export const isPathNotFound = (e: unknown): e is PathNotFoundError => e instanceof PathNotFoundError;
