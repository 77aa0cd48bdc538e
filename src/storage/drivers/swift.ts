/**
 * OpenStack Swift StorageDriver (registry:2's native `swift` driver), on swift-client.ts.
 * Driver path "/a/b" is the object "<prefix>/a/b" in the configured container.
 *
 * - Small files are single objects (one PUT, atomic).
 * - A writer whose bytes outgrow one `chunkSize` writes segments and, at commit, a Static Large
 *   Object manifest at the path (atomic: before it the path is untouched). Segments live under
 *   "<prefix>/.stowage-segments/<path>/<writer id>/<n>", so deleting a path or a directory also
 *   finds the segments of writes that were abandoned there.
 * - An append writes a new manifest: the old segments (or the old object copied server-side into
 *   one) followed by the new ones. Nothing is re-sent.
 * - A move of a large object copies its manifest, not its bytes: a marker "<segments of
 *   source>/.moved" (naming the destination) is written first, so if the process dies between
 *   the new manifest and the deletion of the old one, deleting the source later leaves the
 *   segments the destination uses.
 * Errors: 5xx and network failures are retried with backoff (swift-client.ts); anything left is
 * a DriverError, which clients see as 503 UNAVAILABLE.
 */
import { createHmac } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DriverError, InvalidOffsetError, PathNotFoundError, StorageError,
  type FileInfo, type FileWriter, type ReadOptions, type RedirectOptions, type StorageDriver,
} from '../driver.js';
import { childPrefix, forEachLimit, keyFor, MiB, normaliseRoot, pathFor, randomId } from './object-store.js';
import { SwiftWriter } from './swift-writer.js';
import { checkStore } from './store-check.js';
import { SwiftClient, SwiftHttpError, type SwiftAuthOptions, type SwiftResponse } from './swift-client.js';

export interface SwiftDriverOptions extends SwiftAuthOptions {
  container: string;
  prefix?: string;
  /** Segment size (default 20 MiB, as registry:2). */
  chunkSize?: number;
  /** Temp-URL key; absent: read from the account (or container) metadata when first needed. */
  secretKey?: string;
  /** Read the temp-URL key from the container's metadata instead of the account's. */
  tempUrlContainerKey?: boolean;
  /** Methods that may be redirected to a temp URL (default GET and HEAD). */
  tempUrlMethods?: string[];
  redirectExpirySeconds?: number;
  /** Objects per listing page (default 10,000, Swift's maximum). */
  listPageSize?: number;
}

export interface SloSegment { path: string; etag: string | null; size_bytes: number }

const SEGMENTS = '.stowage-segments';
const MOVED = '.moved';

export class SwiftDriver implements StorageDriver {
  readonly name = 'swift';
  readonly readsWhileWriting = false;
  readonly client: SwiftClient;
  private readonly root: string;
  readonly chunkSize: number;
  private readonly pageSize: number;
  private tempUrlKey: Promise<string | undefined> | undefined;

  constructor(private readonly options: SwiftDriverOptions) {
    this.root = normaliseRoot(options.prefix);
    this.client = new SwiftClient(options, options.container);
    this.chunkSize = options.chunkSize ?? 20 * MiB;
    this.pageSize = options.listPageSize ?? 10_000;
  }

  /**
   * Authenticates and creates the container when it is missing, as registry:2's swift driver
   * does when it starts.
   */
  async check(): Promise<void> {
    await checkStore(this.name, `${this.options.authUrl} container "${this.options.container}"`, async (signal) => {
      const head = await this.call({ method: 'HEAD', signal }, [200, 204, 404]);
      await head.body.dump();
      if (head.status === 404) await (await this.call({ method: 'PUT', signal, headers: { 'content-length': '0' } }, [201, 202, 204])).body.dump();
    });
  }

  key(path: string): string {
    return keyFor(this.root, path);
  }

  /** Where the segments of writes to `path` live (a prefix ending in "/"). */
  segmentDir(path: string): string {
    return `${childPrefix(this.root)}${SEGMENTS}${path === '/' ? '' : path}/`;
  }

  private wrap(e: unknown, path: string): Error {
    if (e instanceof StorageError) return e;
    if (e instanceof SwiftHttpError && e.status === 404) return new PathNotFoundError('path not found', path, { cause: e });
    const err = e as { name?: string; message?: string; code?: string };
    if (err?.name === 'AbortError') return e as Error;
    return new DriverError(`swift: ${err?.code ?? err?.name ?? 'error'}: ${err?.message ?? String(e)}`, path, { cause: e });
  }

  /** Sends and fails on any status outside `ok` (the body is consumed on failure). */
  async call(req: Parameters<SwiftClient['send']>[0], ok: number[] = [200, 201, 202, 204, 206]): Promise<SwiftResponse> {
    const r = await this.client.send(req);
    if (!ok.includes(r.status)) {
      const text = (await r.body.text().catch(() => '')).slice(0, 200);
      throw new SwiftHttpError(r.status, `${req.method} ${req.object ?? ''}: ${r.status} ${text}`.trim());
    }
    return r;
  }

  async head(name: string): Promise<{ size: number; modTime: Date; slo: boolean; meta: Record<string, string> } | undefined> {
    const r = await this.call({ method: 'HEAD', object: name }, [200, 204, 404]);
    await r.body.dump();
    if (r.status === 404) return undefined;
    return {
      size: Number(r.headers['content-length'] ?? 0),
      modTime: new Date(r.headers['last-modified'] ?? Date.now()),
      slo: (r.headers['x-static-large-object'] ?? '').toLowerCase() === 'true',
      meta: r.headers,
    };
  }

  /** One page of a container listing. */
  private async listPage(prefix: string, delimiter: string | undefined, marker: string | undefined, limit = this.pageSize) {
    const r = await this.call({
      method: 'GET',
      query: { format: 'json', prefix, limit: String(limit), ...(delimiter ? { delimiter } : {}), ...(marker ? { marker } : {}) },
    }, [200, 204]);
    if (r.status === 204) {
      await r.body.dump();
      return [];
    }
    return await r.body.json() as Array<{ name?: string; subdir?: string; bytes?: number; slo_etag?: string }>;
  }

  /** Every object name under a prefix (all pages). */
  private async *allUnder(prefix: string): AsyncGenerator<{ name: string; slo: boolean }> {
    let marker: string | undefined;
    for (;;) {
      const page = await this.listPage(prefix, undefined, marker);
      for (const o of page) if (o.name) yield { name: o.name, slo: o.slo_etag !== undefined };
      if (page.length < this.pageSize) return;
      marker = page[page.length - 1]!.name;
    }
  }

  async stat(path: string): Promise<FileInfo> {
    const name = this.key(path);
    try {
      const file = name === '' ? undefined : await this.head(name);
      if (file) return { path, size: file.size, modTime: file.modTime, isDir: false };
      if ((await this.listPage(childPrefix(name), undefined, undefined, 1)).length > 0) return { path, size: 0, modTime: new Date(), isDir: true };
    } catch (e) {
      throw this.wrap(e, path);
    }
    throw new PathNotFoundError('path not found', path);
  }

  async getContent(path: string): Promise<Buffer> {
    try {
      const r = await this.call({ method: 'GET', object: this.key(path) });
      return Buffer.from(await r.body.arrayBuffer());
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    try {
      await this.put(this.key(path), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async put(name: string, body: Buffer, headers: Record<string, string> = {}): Promise<string | null> {
    const r = await this.call({ method: 'PUT', object: name, body, headers: { 'content-type': 'application/octet-stream', ...headers } });
    await r.body.dump();
    return r.headers.etag?.replace(/"/g, '') ?? null;
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    const name = this.key(path);
    const offset = options.offset ?? 0;
    try {
      if (options.length === 0) {
        await this.stat(path);
        return Readable.from([]);
      }
      const last = options.length === undefined ? '' : String(offset + options.length - 1);
      const range = offset > 0 || last !== '' ? { range: `bytes=${offset}-${last}` } : undefined;
      const r = await this.call({ method: 'GET', object: name, ...(range ? { headers: range } : {}), ...(options.signal ? { signal: options.signal } : {}) }, [200, 206, 416]);
      if (r.status !== 416) return r.body;
      await r.body.dump();
      const file = await this.head(name);
      if (!file) throw new PathNotFoundError('path not found', path);
      if (offset === file.size) return Readable.from([]);
      throw new InvalidOffsetError(`offset ${offset} beyond size ${file.size}`, path);
    } catch (e) {
      throw this.wrap(e, path);
    }
  }

  async writer(path: string, options: { append?: boolean } = {}): Promise<FileWriter> {
    const name = this.key(path);
    let existing = 0;
    let segments: SloSegment[] = [];
    let seed: Buffer | undefined;
    const writerId = randomId();
    try {
      const file = options.append ? await this.head(name) : undefined;
      existing = file?.size ?? 0;
      if (file?.slo) {
        segments = await this.manifestOf(name);
      } else if (existing > 0 && existing < this.chunkSize) {
        seed = await this.getContent(path);
      } else if (existing > 0) {
        // A plain object of a segment or more: copy it server-side into the first segment.
        const first = `${this.segmentDir(path)}${writerId}/00000000`;
        const r = await this.call({ method: 'PUT', object: first, headers: { 'X-Copy-From': `/${this.options.container}/${name}`, 'content-length': '0' } });
        await r.body.dump();
        segments = [{ path: `/${this.options.container}/${first}`, etag: null, size_bytes: existing }];
      }
    } catch (e) {
      throw this.wrap(e, path);
    }
    return new SwiftWriter(this, path, name, writerId, existing, segments, seed).fileWriter();
  }

  /** The segment list of an SLO manifest, in the form a manifest PUT takes. */
  async manifestOf(name: string): Promise<SloSegment[]> {
    const r = await this.call({ method: 'GET', object: name, query: { 'multipart-manifest': 'get', format: 'raw' } });
    return await r.body.json() as SloSegment[];
  }

  async putManifest(name: string, segments: SloSegment[], headers: Record<string, string> = {}): Promise<void> {
    const r = await this.call({
      method: 'PUT', object: name, query: { 'multipart-manifest': 'put' },
      headers: { 'content-type': 'application/octet-stream', ...headers }, body: Buffer.from(JSON.stringify(segments)),
    });
    await r.body.dump();
  }

  async list(path: string): Promise<string[]> {
    const prefix = childPrefix(this.key(path));
    const out = new Set<string>();
    const hidden = `${childPrefix(this.root)}${SEGMENTS}`;
    try {
      let marker: string | undefined;
      for (;;) {
        const page = await this.listPage(prefix, '/', marker);
        for (const o of page) {
          const n = o.subdir ?? o.name!;
          if (n === prefix || n.replace(/\/$/, '') === hidden) continue;
          out.add(pathFor(this.root, n));
        }
        if (page.length < this.pageSize) break;
        const lastEntry = page[page.length - 1]!;
        marker = lastEntry.subdir ?? lastEntry.name;
      }
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
      if (file.slo) {
        const segments = await this.manifestOf(from);
        await this.put(`${this.segmentDir(source)}${MOVED}`, Buffer.from(to));
        await this.putManifest(to, segments, { 'X-Object-Meta-Stowage-Moved-From': source });
      } else {
        const r = await this.call({ method: 'PUT', object: to, headers: { 'X-Copy-From': `/${this.options.container}/${from}`, 'content-length': '0' } });
        await r.body.dump();
      }
      const d = await this.call({ method: 'DELETE', object: from }, [200, 204, 404]);
      await d.body.dump();
    } catch (e) {
      throw this.wrap(e, source);
    }
  }

  async delete(path: string): Promise<void> {
    const name = this.key(path);
    let found = false;
    try {
      const objects: Array<{ name: string; slo: boolean }> = [];
      if (name !== '') {
        const file = await this.head(name);
        if (file) objects.push({ name, slo: file.slo });
      }
      const hidden = childPrefix(this.root) + SEGMENTS + '/';
      for await (const o of this.allUnder(childPrefix(name))) if (!o.name.startsWith(hidden)) objects.push(o);
      found = objects.length > 0;
      await forEachLimit(objects, 16, (o) => this.deleteObject(o.name, o.slo));
      found = (await this.deleteOrphanSegments(path)) || found;
    } catch (e) {
      throw this.wrap(e, path);
    }
    if (!found) throw new PathNotFoundError('path not found', path);
  }

  /** Deletes one object; an SLO manifest takes its segments along unless they moved elsewhere. */
  private async deleteObject(name: string, slo: boolean): Promise<void> {
    let withSegments = slo;
    if (slo) {
      const file = await this.head(name);
      const movedFrom = file?.meta['x-object-meta-stowage-moved-from'];
      const own = pathFor(this.root, name);
      if (await this.movedAway(own)) withSegments = false;
      if (movedFrom) {
        const marker = await this.call({ method: 'DELETE', object: `${this.segmentDir(movedFrom)}${MOVED}` }, [200, 204, 404]);
        await marker.body.dump();
      }
    }
    const r = await this.call({
      method: 'DELETE', object: name, ...(withSegments ? { query: { 'multipart-manifest': 'delete' }, headers: { accept: 'application/json' } } : {}),
    }, [200, 204, 404]);
    if (withSegments && r.status === 200) {
      const result = await r.body.json() as { 'Response Status'?: string; Errors?: unknown[] };
      if (result['Response Status'] && !/^2|^404/.test(result['Response Status'])) {
        throw new SwiftHttpError(502, `deleting ${name} and its segments: ${result['Response Status']}`);
      }
    } else {
      await r.body.dump();
    }
  }

  /** True when the large object at `path` was moved and its destination manifest still exists. */
  private async movedAway(path: string): Promise<boolean> {
    const r = await this.call({ method: 'GET', object: `${this.segmentDir(path)}${MOVED}` }, [200, 404]);
    if (r.status === 404) {
      await r.body.dump();
      return false;
    }
    const dest = await r.body.text();
    return (await this.head(dest))?.slo === true;
  }

  /** Segments under a path left by writes that never committed (or whose manifest is gone). */
  private async deleteOrphanSegments(path: string): Promise<boolean> {
    const dir = this.segmentDir(path);
    const byFile = new Map<string, string[]>();
    for await (const o of this.allUnder(dir)) {
      // <dir-of-path><file path>/<writer id>/<n>  or  <...><file path>/.moved
      const rel = o.name.slice(this.segmentDir('/').length);
      const parts = rel.split('/');
      const file = `/${(parts[parts.length - 1] === MOVED ? parts.slice(0, -1) : parts.slice(0, -2)).join('/')}`;
      const list = byFile.get(file) ?? [];
      list.push(o.name);
      byFile.set(file, list);
    }
    const doomed: string[] = [];
    for (const [file, names] of byFile) {
      if (await this.movedAway(file)) continue;
      // A live manifest at the file itself still uses its segments.
      if ((await this.head(this.key(file)))?.slo) continue;
      doomed.push(...names);
    }
    await forEachLimit(doomed, 16, async (n) => {
      const r = await this.call({ method: 'DELETE', object: n }, [200, 204, 404]);
      await r.body.dump();
    });
    return doomed.length > 0;
  }

  private async secretKey(): Promise<string | undefined> {
    if (this.options.secretKey) return this.options.secretKey;
    this.tempUrlKey ??= (async () => {
      const r = await this.call({ method: 'HEAD', object: this.options.tempUrlContainerKey ? undefined : null }, [200, 204]);
      await r.body.dump();
      return this.options.tempUrlContainerKey ? r.headers['x-container-meta-temp-url-key'] : r.headers['x-account-meta-temp-url-key'];
    })();
    this.tempUrlKey.catch(() => { this.tempUrlKey = undefined; });
    return this.tempUrlKey;
  }

  async redirectURL(path: string, options: RedirectOptions): Promise<string | undefined> {
    const methods = this.options.tempUrlMethods ?? ['GET', 'HEAD'];
    if (!methods.includes(options.method)) return undefined;
    const key = await this.secretKey();
    if (!key) return undefined;
    const session = await this.client.getSession();
    const url = new URL(this.client.url(session, this.key(path)));
    const expires = Math.floor(Date.now() / 1000) + (this.options.redirectExpirySeconds ?? 20 * 60);
    // A GET signature also allows HEAD; sign for GET either way.
    const sig = createHmac('sha256', key).update(`GET\n${expires}\n${decodeURIComponent(url.pathname)}`).digest('hex');
    url.search = new URLSearchParams({ temp_url_sig: sig, temp_url_expires: String(expires) }).toString();
    return url.toString();
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
