/** HTTP Range (RFC 9110) for blob GETs, and the registry Content-Range of upload chunks. */
import { RegistryError } from '../errors.js';
import type { BlobRange } from '../registry/blob-store.js';

/**
 * The single byte range asked for, or undefined to send the whole blob (no header, a multi-range
 * or a malformed header, which RFC 9110 lets a server ignore). Unsatisfiable -> 416.
 */
export function parseRangeHeader(header: string | undefined, size: number): BlobRange | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  if (start >= size || size === 0) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError('SIZE_INVALID', 'requested range not satisfiable', {
    status: 416, headers: { 'Content-Range': `bytes */${size}` },
  });
}

/** Upload chunk Content-Range: "<start>-<end>" (also accepts a "bytes " prefix). */
export function parseContentRange(header: string | undefined): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m) throw new RegistryError('BLOB_UPLOAD_INVALID', 'invalid Content-Range', { status: 416, detail: { contentRange: header.slice(0, 100) } });
  return { start: Number(m[1]), end: Number(m[2]) };
}

/** Content-Length as a number, undefined when absent; a garbage value is a 400. */
export function contentLength(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  if (!/^\d+$/.test(header)) throw new RegistryError('SIZE_INVALID', 'invalid Content-Length');
  return Number(header);
}
