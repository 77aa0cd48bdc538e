// A WAN stand-in: a userspace TCP relay on 127.0.0.1 that adds a round-trip time and paces each
// connection's downstream bytes (this kernel has no netem or fq qdisc; see
// ../shared/reference/postgres-chromium-wan.md). Each direction is held RTT/2; a new connection's
// first bytes also wait one RTT, the handshake the client did not have to make on loopback, so a
// new connection costs what it costs on a WAN: its first answer comes two RTTs after connect().
// Downstream (target -> client) is serialised at `rate` per connection, in chunks of up to
// 256 KiB so that timer overhead stays small. Upstream bytes (requests) are only delayed.
//
// Library: const r = await startRelay({ target: '127.0.0.1:5000', rttMs: 50, rateBps: 200e6 });
//          r.port, r.stats() -> { connections, open, bytesUp, bytesDown }, r.reset(), r.close()
// CLI:     node bench/wan-relay.mjs --rtt 50 --rate 200mbit LISTEN=TARGET [LISTEN=TARGET ...]
//          (LISTEN a port or 0 for any; each line printed at start: `relay PORT -> TARGET`;
//          `--control PORT` serves GET /stats and POST /reset as JSON for every relay)
//          node bench/wan-relay.mjs --check [--rtt 50 --rate 200mbit]  measures the relay itself
import { createServer, connect } from 'node:net';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { pathToFileURL } from 'node:url';

const CHUNK = 256 * 1024;
/** Downstream bytes queued in the relay before the target is paused (one BDP at 1 Gbit/s, 50 ms). */
const QUEUE_PAUSE = 4 * 1024 * 1024;
const QUEUE_RESUME = 1024 * 1024;

/** "200mbit", "1gbit", "25MB" (bytes/s) or a number of bits per second. */
export function parseRate(s) {
  if (typeof s === 'number') return s;
  const m = /^([\d.]+)\s*(k|m|g)?(bit|b|B)?(?:\/s|ps)?$/.exec(String(s).trim());
  if (!m) throw new Error(`cannot read the rate ${JSON.stringify(s)} (e.g. 200mbit)`);
  const scale = { undefined: 1, k: 1e3, m: 1e6, g: 1e9 }[m[2]];
  return Number(m[1]) * scale * (m[3] === 'B' ? 8 : 1);
}

function hostPort(s) {
  const i = String(s).lastIndexOf(':');
  return i < 0 ? { host: '127.0.0.1', port: Number(s) } : { host: s.slice(0, i) || '127.0.0.1', port: Number(s.slice(i + 1)) };
}

/**
 * One direction of one connection: bytes queued with the time they reach the far side, written
 * in order when that time comes. `bitsPerSec` 0: no pacing (delay only).
 */
class Lane {
  constructor(out, delayMs, bitsPerSec, onQueue) {
    this.out = out;
    this.delay = delayMs;
    this.bps = bitsPerSec;
    this.onQueue = onQueue;
    this.units = []; // { bufs, size, start, at } in order
    this.busyUntil = 0; // when the link has serialised everything queued so far
    this.notBefore = 0; // nothing leaves before this (the handshake)
    this.queued = 0;
    this.timer = undefined;
    this.ended = false;
  }

  push(buf) {
    const now = performance.now();
    const last = this.units[this.units.length - 1];
    if (last && last.size + buf.length <= CHUNK && !last.sent) {
      last.bufs.push(buf);
      last.size += buf.length;
    } else {
      const start = Math.max(now, this.busyUntil, this.notBefore);
      this.units.push({ bufs: [buf], size: buf.length, start, at: 0 });
      // A big arrival is split over several units so that pacing stays smooth.
      if (buf.length > CHUNK) {
        const unit = this.units.pop();
        for (let o = 0; o < buf.length; o += CHUNK) {
          const part = buf.subarray(o, o + CHUNK);
          this.units.push({ bufs: [part], size: part.length, start: Math.max(unit.start, this.busyUntil), at: 0 });
          this.finish(this.units[this.units.length - 1]);
        }
        this.queued += buf.length;
        this.onQueue?.(this.queued);
        this.arm();
        return;
      }
    }
    this.finish(this.units[this.units.length - 1]);
    this.queued += buf.length;
    this.onQueue?.(this.queued);
    this.arm();
  }

  /** The unit's delivery time: serialised from its start at the rate, then the one-way delay. */
  finish(unit) {
    const txMs = this.bps > 0 ? (unit.size * 8 * 1000) / this.bps : 0;
    const done = unit.start + txMs;
    this.busyUntil = done;
    unit.at = done + this.delay;
  }

  end() {
    this.ended = true;
    this.arm();
  }

  arm() {
    if (this.timer) return;
    const head = this.units[0];
    if (!head) {
      if (this.ended && !this.out.destroyed) this.out.end();
      return;
    }
    this.timer = setTimeout(() => this.flush(), Math.max(0, head.at - performance.now()));
  }

  flush() {
    this.timer = undefined;
    const now = performance.now();
    while (this.units.length && this.units[0].at <= now + 0.5) {
      const u = this.units.shift();
      u.sent = true;
      this.queued -= u.size;
      if (!this.out.destroyed) for (const b of u.bufs) this.out.write(b);
    }
    this.onQueue?.(this.queued);
    this.arm();
  }

  cancel() {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.units.length = 0;
  }
}

/**
 * A relay listening on 127.0.0.1:listenPort (0: any free port) to target ("host:port").
 * rateBps: bits per second per connection, downstream; 0 for no limit.
 */
export async function startRelay({ target, rttMs = 50, rateBps = 0, listenPort = 0 }) {
  const to = hostPort(target);
  const half = rttMs / 2;
  const stats = { connections: 0, open: 0, bytesUp: 0, bytesDown: 0 };
  const sockets = new Set();
  const server = createServer({ noDelay: true }, (client) => {
    stats.connections++;
    stats.open++;
    sockets.add(client);
    const accepted = performance.now();
    const server = connect({ host: to.host, port: to.port, noDelay: true });
    sockets.add(server);
    const up = new Lane(server, half, 0);
    up.notBefore = accepted + rttMs; // the handshake the loopback connect() skipped
    const down = new Lane(client, half, rateBps, (queued) => {
      if (queued > QUEUE_PAUSE) server.pause();
      else if (queued < QUEUE_RESUME && server.isPaused()) server.resume();
    });
    let closed = false;
    const close = (resetClient) => {
      if (closed) return;
      closed = true;
      stats.open--;
      up.cancel();
      down.cancel();
      server.destroy();
      if (resetClient) client.resetAndDestroy();
      else client.destroy();
    };
    client.on('data', (b) => { stats.bytesUp += b.length; up.push(b); });
    client.on('end', () => up.end());
    server.on('data', (b) => { stats.bytesDown += b.length; down.push(b); });
    server.on('end', () => down.end());
    // Refused or reset by the target: the client learns it one round trip later, as on a WAN.
    server.on('error', () => setTimeout(() => close(true), rttMs));
    client.on('error', () => close(false));
    client.on('close', () => { sockets.delete(client); setTimeout(() => close(false), half); });
    server.on('close', () => sockets.delete(server));
    // A client that stops reading: stop reading the target too (bounded memory).
    client.on('drain', () => { if (down.queued < QUEUE_RESUME) server.resume(); });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', resolve);
  });
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    target,
    stats: () => ({ ...stats }),
    /** Counts from now: connections already open are not new ones. */
    reset: () => { stats.connections = 0; stats.bytesUp = 0; stats.bytesDown = 0; },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

// ------------------------------------------------------------------ the check

/** A server answering GET /N with N bytes (and /0 with nothing), keep-alive. */
async function sizedServer() {
  const zeros = Buffer.alloc(CHUNK);
  const srv = createHttpServer((req, res) => {
    const n = Number(req.url.slice(1)) || 0;
    res.writeHead(200, { 'content-length': String(n) });
    let left = n;
    const more = () => {
      while (left > 0) {
        const part = zeros.subarray(0, Math.min(left, zeros.length));
        left -= part.length;
        if (!res.write(part)) return res.once('drain', more);
      }
      res.end();
    };
    more();
  });
  srv.keepAliveTimeout = 60_000;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return srv;
}

function get(port, path, agent) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      let bytes = 0;
      res.on('data', (b) => { bytes += b.length; });
      res.on('end', () => resolve({ ms: performance.now() - t0, bytes }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Measures the relay: a new connection's first answer, a kept-alive one, and throughput. */
export async function check({ rttMs = 50, rateBps = 200e6 } = {}) {
  const { Agent } = await import('node:http');
  const srv = await sizedServer();
  const relay = await startRelay({ target: `127.0.0.1:${srv.address().port}`, rttMs, rateBps });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const fresh = [];
  const kept = [];
  for (let i = 0; i < 5; i++) {
    const a = new Agent({ keepAlive: true, maxSockets: 1 });
    fresh.push((await get(relay.port, '/0', a)).ms);
    kept.push((await get(relay.port, '/0', a)).ms);
    a.destroy();
  }
  const size = 32 * 1024 * 1024;
  await get(relay.port, '/0', agent); // a warm connection for the single-stream download
  const one = await get(relay.port, `/${size}`, agent);
  const four = await Promise.all(Array.from({ length: 4 }, () => get(relay.port, `/${size / 4}`, new Agent({ keepAlive: false }))));
  agent.destroy();
  const stats = relay.stats();
  await relay.close();
  srv.close();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const expectOne = rttMs + (size * 8 * 1000) / rateBps;
  const expectFour = 2 * rttMs + (size / 4 * 8 * 1000) / rateBps;
  const rows = [
    ['new connection, first answer (ms)', 2 * rttMs, median(fresh)],
    ['kept-alive connection, next answer (ms)', rttMs, median(kept)],
    [`32 MiB on one warm connection (ms)`, expectOne, one.ms],
    ['  = per-connection rate (Mbit/s)', rateBps / 1e6, (size * 8) / ((one.ms - rttMs) / 1000) / 1e6],
    ['4 new connections, 8 MiB each, at once (ms)', expectFour, Math.max(...four.map((r) => r.ms))],
  ];
  return { rows, stats, ok: rows.every(([, want, got]) => Math.abs(got - want) / want < 0.15) };
}

// ------------------------------------------------------------------ command line

async function main(argv) {
  let rttMs = 50;
  let rateBps = 200e6;
  let controlPort;
  let doCheck = false;
  const pairs = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rtt') rttMs = Number(argv[++i]);
    else if (a === '--rate') rateBps = parseRate(argv[++i]);
    else if (a === '--control') controlPort = Number(argv[++i]);
    else if (a === '--check') doCheck = true;
    else if (/^\d+=.+/.test(a)) pairs.push(a.split('='));
    else throw new Error(`unknown argument ${a}`);
  }
  if (doCheck) {
    const { rows, stats, ok } = await check({ rttMs, rateBps });
    console.log(`| wan-relay check, RTT ${rttMs} ms, ${rateBps / 1e6} Mbit/s per connection | expected | measured |\n|---|---|---|`);
    for (const [what, want, got] of rows) console.log(`| ${what} | ${want.toFixed(1)} | ${got.toFixed(1)} |`);
    console.log(`relay counted ${stats.connections} connections, ${(stats.bytesDown / 2 ** 20).toFixed(1)} MiB down`);
    process.exitCode = ok ? 0 : 1;
    return;
  }
  const relays = [];
  for (const [listen, target] of pairs) {
    const r = await startRelay({ target, rttMs, rateBps, listenPort: Number(listen) });
    relays.push(r);
    console.log(`relay ${r.port} -> ${target}`);
  }
  if (controlPort !== undefined) {
    const control = createHttpServer((req, res) => {
      if (req.method === 'POST' && req.url === '/reset') relays.forEach((r) => r.reset());
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(Object.fromEntries(relays.map((r) => [r.port, { target: r.target, ...r.stats() }]))));
    });
    await new Promise((r) => control.listen(controlPort, '127.0.0.1', r));
    console.log(`control ${control.address().port}`);
  }
  const stop = () => Promise.all(relays.map((r) => r.close())).then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e) => { console.error(e.message); process.exit(2); });
}
