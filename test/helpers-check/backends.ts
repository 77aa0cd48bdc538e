/**
 * Tiny node:http backends for checking the nginx helper: each records what it saw (method, URL,
 * headers, when body bytes arrived) and behaves as the route asks:
 *   GET  /hello         answers its own address
 *   GET  /drip          sends one chunk, then the rest once release() is called
 *   PATCH|PUT /upload   reads the body, answers its length and sha256
 *   ANY  /cut           reads a little of the body, then destroys the connection (no response)
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Body bytes received so far. */
  received: number;
  ended: boolean;
}

export interface Backend {
  /** "127.0.0.1:PORT", as nginx's $upstream_addr names it. */
  addr: string;
  port: number;
  seen: Seen[];
  /** Lets every pending /drip response finish. */
  release(): void;
  close(): Promise<void>;
}

export async function startBackend(): Promise<Backend> {
  const seen: Seen[] = [];
  const waiting: Array<() => void> = [];
  const sockets = new Set<Socket>();
  let addr = '';
  const server: Server = createServer((req, res) => {
    const record: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, received: 0, ended: false };
    seen.push(record);
    const hash = createHash('sha256');
    req.on('data', (d: Buffer) => { record.received += d.length; hash.update(d); });
    if (req.url === '/cut') {
      req.once('data', () => req.socket.destroy());
      req.once('end', () => req.socket.destroy());
      return;
    }
    req.on('end', () => {
      record.ended = true;
      if (req.url === '/drip') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first chunk\n');
        waiting.push(() => res.end('rest\n'));
        return;
      }
      if (req.url === '/upload') {
        res.end(JSON.stringify({ backend: addr, length: record.received, sha256: hash.digest('hex') }));
        return;
      }
      res.end(addr);
    });
  });
  // Longer than nginx's upstream keep-alive (60 s), as stowage's 75 s is.
  server.keepAliveTimeout = 75_000;
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  addr = `127.0.0.1:${port}`;
  return {
    addr, port, seen,
    release() { for (const w of waiting.splice(0)) w(); },
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}
