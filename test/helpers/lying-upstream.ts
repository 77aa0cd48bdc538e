/**
 * A registry that lies, on node:http: for each blob or manifest a behaviour (good, wrong bytes,
 * truncated, reset mid-body, 500, 429, slow headers, slow body, never answers, a redirect to
 * another origin). Counts requests and connections, and records every request's Authorization.
 * With `auth`, it challenges requests whose Authorization it does not accept (as a registry with
 * Basic or Bearer auth does).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export type Behaviour = 'good' | 'wrong-bytes' | 'truncated' | 'reset' | '500' | '429' | '403' | 'slow-headers' | 'slow-body' | 'hang' | 'extra-bytes' | 'redirect'
  /**
   * Range requests (a blob GET with `Range: bytes=a-b` or `bytes=a-`): 'ranged' answers each 206
   * with exactly the range asked (416 past the end, 200 whole without a Range). The others honour
   * the first range (from byte 0) and any open-ended one (`bytes=a-`, a fallback's) and lie to
   * the later bounded ones: 'range-wrong' sends the range one byte further on (Content-Range to
   * match), 'range-short' cuts the body at half (the connection ends), 'range-200-later' answers
   * 200 with the whole blob. 'ranged-slow-head' is 'ranged' with the first range (from byte 0)
   * sent in 64 KiB pieces over slowMs, the later ones at once: they arrive long before their turn.
   */
  | 'ranged' | 'range-wrong' | 'range-short' | 'range-200-later' | 'ranged-slow-head';

export interface Item { bytes: Buffer; mediaType?: string; behaviour: Behaviour }

export interface Seen { method: string; path: string; authorization: string | undefined; status: number; range?: string }

export interface LyingUpstreamOptions {
  slowMs?: number;
  /** 'redirect' answers 307 to this base URL plus the request's path (a CDN). */
  redirectTo?: string;
  /** Requests whose Authorization `accept` refuses get 401 with this WWW-Authenticate. */
  auth?: { challenge: string; accept: (authorization: string | undefined) => boolean };
  /** Answers every request with this status (a whole registry failing, e.g. 500 or 404). */
  status?: number;
}

export interface LyingUpstream {
  url: string;
  /** Every request, in order, with the status it got (0 while unanswered). */
  seen: Seen[];
  blobs: Map<string, Item>;
  manifests: Map<string, Item>;
  requests(pathPart: string): number;
  connections(): number;
  /**
   * Publishes a good OCI manifest as repo:tag whose layers are `layers` (stowage fetches a blob
   * from an upstream only when a manifest cached in that repository references it). Returns the
   * manifest bytes and digest.
   */
  publishImage(repo: string, tag: string, layers: Array<{ digest: string; size: number }>): { bytes: Buffer; digest: string };
  close(): Promise<void>;
}

export async function startLyingUpstream(options: LyingUpstreamOptions = {}): Promise<LyingUpstream> {
  const slowMs = options.slowMs ?? 3000;
  const blobs = new Map<string, Item>();
  const manifests = new Map<string, Item>();
  const log: string[] = [];
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => { const h = setTimeout(() => { timers.delete(h); fn(); }, ms); timers.add(h); };

  const serve = (req: IncomingMessage, res: ServerResponse, item: Item) => {
    const headers: Record<string, string> = { 'content-type': item.mediaType ?? 'application/octet-stream', 'docker-distribution-api-version': 'registry/2.0' };
    // as real registries do (a liar's wrong-bytes case then claims the right digest for wrong bytes)
    if (item.mediaType) headers['docker-content-digest'] = `sha256:${createHash('sha256').update(item.bytes).digest('hex')}`;
    const body = item.bytes;
    switch (item.behaviour) {
      case 'good':
        res.writeHead(200, { ...headers, 'content-length': String(body.length) });
        return res.end(req.method === 'HEAD' ? undefined : body);
      case 'wrong-bytes': {
        const wrong = Buffer.from(body);
        wrong[wrong.length - 1] = (wrong[wrong.length - 1] ?? 0) ^ 0xff;
        res.writeHead(200, { ...headers, 'content-length': String(body.length) });
        return res.end(wrong);
      }
      case 'extra-bytes':
        res.writeHead(200, headers); // chunked, no length: more bytes than the digest's content
        return res.end(Buffer.concat([body, Buffer.from('trailing junk')]));
      case 'truncated':
        res.writeHead(200, { ...headers, 'content-length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        return later(50, () => res.socket?.end());
      case 'reset':
        res.writeHead(200, { ...headers, 'content-length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        return later(50, () => res.socket?.resetAndDestroy());
      case '500':
        res.writeHead(500, { 'content-type': 'text/plain' });
        return res.end('boom');
      case '403':
        res.writeHead(403, { 'content-type': 'application/json' });
        return res.end('{"errors":[{"code":"DENIED","message":"not for you"}]}');
      case '429':
        res.writeHead(429, { 'retry-after': '7', 'content-type': 'application/json' });
        return res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
      case 'slow-headers':
        return later(slowMs, () => {
          if (res.destroyed) return;
          res.writeHead(200, { ...headers, 'content-length': String(body.length) });
          res.end(body);
        });
      case 'slow-body':
        res.writeHead(200, { ...headers, 'content-length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        return later(slowMs, () => { if (!res.destroyed) res.end(body.subarray(Math.floor(body.length / 2))); });
      case 'hang':
        return; // accepted, never answered
      case 'redirect':
        res.writeHead(307, { location: `${options.redirectTo}${req.url ?? ''}`, 'content-length': '0' });
        return res.end();
      case 'ranged':
      case 'range-wrong':
      case 'range-short':
      case 'range-200-later':
      case 'ranged-slow-head':
        return serveRange(req, res, body, headers, item.behaviour);
    }
  };

  const serveRange = (req: IncomingMessage, res: ServerResponse, body: Buffer, headers: Record<string, string>, behaviour: Behaviour) => {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!m) {
      res.writeHead(200, { ...headers, 'content-length': String(body.length) });
      return res.end(req.method === 'HEAD' ? undefined : body);
    }
    let start = Number(m[1]);
    const bounded = m[2] !== '';
    const end = Math.min(bounded ? Number(m[2]) : body.length - 1, body.length - 1);
    if (start >= body.length) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}`, 'content-length': '0' });
      return res.end();
    }
    const lie = behaviour !== 'ranged' && behaviour !== 'ranged-slow-head' && start > 0 && bounded;
    if (lie && behaviour === 'range-200-later') {
      res.writeHead(200, { ...headers, 'content-length': String(body.length) });
      return res.end(body);
    }
    if (lie && behaviour === 'range-wrong') start += 1;
    const part = body.subarray(start, end + 1);
    res.writeHead(206, { ...headers, 'content-length': String(part.length), 'content-range': `bytes ${start}-${end}/${body.length}` });
    if (lie && behaviour === 'range-short') {
      res.write(part.subarray(0, Math.floor(part.length / 2)));
      return later(50, () => res.socket?.end());
    }
    if (behaviour === 'ranged-slow-head' && start === 0) {
      const piece = 64 * 1024;
      const pieces = Math.ceil(part.length / piece);
      let sent = 0;
      const next = () => {
        if (res.destroyed) return;
        if (sent >= pieces) return void res.end();
        res.write(part.subarray(sent * piece, (sent + 1) * piece));
        sent++;
        later(slowMs / pieces, next);
      };
      return next();
    }
    return res.end(part);
  };

  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    log.push(`${req.method} ${path}`);
    const record: Seen = { method: req.method ?? '', path, authorization: req.headers.authorization, status: 0, ...(req.headers.range ? { range: req.headers.range } : {}) };
    seen.push(record);
    res.on('finish', () => { record.status = res.statusCode; });
    if (options.auth && !options.auth.accept(req.headers.authorization)) {
      res.writeHead(401, { 'www-authenticate': options.auth.challenge, 'content-type': 'application/json' });
      return res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    }
    if (options.status !== undefined) {
      res.writeHead(options.status, { 'content-type': 'application/json' });
      return res.end('{"errors":[{"code":"UNKNOWN","message":"as told"}]}');
    }
    if (path === '/v2/' || path === '/v2') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{}');
    }
    const m = /^\/v2\/(.+)\/(blobs|manifests)\/([^/]+)$/.exec(path);
    const item = m ? (m[2] === 'blobs' ? blobs.get(m[3]!) : manifests.get(`${m[1]}:${m[3]}`) ?? manifests.get(m[3]!)) : undefined;
    if (!item) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end('{"errors":[{"code":"NOT_FOUND","message":"not here"}]}');
    }
    serve(req, res, item);
  });
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    blobs,
    manifests,
    requests: (part) => log.filter((l) => l.includes(part)).length,
    connections: () => connections,
    publishImage: (repo, tag, layers) => {
      const config = Buffer.from(`{"tag":"${tag}"}`);
      const bytes = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${createHash('sha256').update(config).digest('hex')}`, size: config.length },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
      }));
      manifests.set(`${repo}:${tag}`, { bytes, mediaType: OCI_MANIFEST, behaviour: 'good' });
      return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
    },
    close: () => new Promise((r) => {
      for (const h of timers) clearTimeout(h);
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}
