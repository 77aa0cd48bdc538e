/** Reading the page's requests once into typed values: query parameters, paths, small bodies. */
import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../errors.js';
import { tryParseDigest, type Digest } from '../oci/digest.js';
import { isValidRepoName, isValidTag, type RepoName, type Reference } from '../oci/reference.js';

const MAX_BODY = 16 * 1024;

export function query(req: FastifyRequest, name: string, maxLength = 256): string | undefined {
  const v = (req.query as Record<string, string | string[] | undefined>)[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s.slice(0, maxLength);
}

export function limitParam(req: FastifyRequest, fallback: number, max: number): number {
  const n = Number(query(req, 'limit') ?? fallback);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', `limit: a whole number from 1 to ${max}`);
  }
  return n;
}

export type RepoPath =
  | { kind: 'repository'; name: RepoName }
  | { kind: 'manifest'; name: RepoName; reference: Reference };

/** "team/app" or "team/app/-/sha256:..." (pages) or "team/app/-/manifests/<tag|digest>" (API). */
export function parseRepoPath(rest: string, manifestsSegment: boolean): RepoPath | undefined {
  const marker = rest.indexOf('/-/');
  const name = marker < 0 ? rest.replace(/\/$/, '') : rest.slice(0, marker);
  if (!isValidRepoName(name)) return undefined;
  if (marker < 0) return { kind: 'repository', name };
  let ref = decodeURIComponent(rest.slice(marker + 3));
  if (manifestsSegment) {
    if (!ref.startsWith('manifests/')) return undefined;
    ref = ref.slice('manifests/'.length);
  }
  const digest = tryParseDigest(ref);
  if (digest) return { kind: 'manifest', name, reference: { kind: 'digest', digest: digest as Digest } };
  return isValidTag(ref) ? { kind: 'manifest', name, reference: { kind: 'tag', tag: ref } } : undefined;
}

/** A small request body (a sign-in form), refused past 16 KiB. */
export function readSmallBody(req: FastifyRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    req.raw.on('data', (c: Buffer) => {
      total += c.length;
      if (total > MAX_BODY) {
        req.raw.destroy();
        reject(new RegistryError('SIZE_INVALID', 'request body too big', { status: 413 }));
      } else chunks.push(c);
    });
    req.raw.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.raw.once('error', reject);
  });
}

/** Form fields from an urlencoded or JSON body (the sign-in form, or a script). */
export async function readFields(req: FastifyRequest): Promise<Record<string, string>> {
  const text = await readSmallBody(req);
  if (String(req.headers['content-type'] ?? '').includes('application/json')) {
    let v: unknown;
    try { v = JSON.parse(text); } catch { throw new RegistryError('UNSUPPORTED', 'the body is not JSON', { status: 400 }); }
    const out: Record<string, string> = {};
    if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
    return out;
  }
  return Object.fromEntries(new URLSearchParams(text));
}

const DURATION = /^(\d{1,5})([hdw])$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "7d", "36h", "2w" or a date, as milliseconds back from now; undefined when it is neither. */
export function sinceMs(text: string, now = Date.now()): number | undefined {
  const m = DURATION.exec(text.trim());
  if (m) return Number(m[1]) * UNIT_MS[m[2]!]!;
  const t = Date.parse(text);
  return Number.isNaN(t) || t > now ? undefined : now - t;
}

/** True when a cookie-authenticated request that changes something came from our own pages. */
export function sameOrigin(req: FastifyRequest): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  const host = (req.headers['x-forwarded-host'] as string | undefined)?.split(',')[0]?.trim() ?? req.headers.host;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}
