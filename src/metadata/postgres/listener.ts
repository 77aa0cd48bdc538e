/**
 * Every replica's change feed over PostgreSQL LISTEN/NOTIFY. A write batch that changes something
 * ends with pg_notify in its own transaction, so the changes are announced exactly when they
 * commit; every replica (the writer too) hears them on a dedicated connection and drops what its
 * caches hold of them.
 *
 * Read-after-write across replicas: the writer does not answer its client until every live
 * replica has said it applied the change (each acknowledges what it hears from another with a
 * NOTIFY of its own; the live replicas are those whose heartbeats were heard lately). Hearing the
 * notification is not enough by itself: a replica's event loop may take a client's request before
 * the database connection's data, even when the notification arrived first.
 *
 * Liveness: the listener announces a heartbeat every HEARTBEAT_MS; while its own heartbeats do not
 * come back (the connection broke, silently or not), the feed is not live and every cache is
 * bypassed. When it is back, everything cached is dropped (changes may have been missed).
 */
import type { Logger } from 'pino';
import type { Sql } from 'postgres';
import { LocalChangeFeed } from '../changes.js';
import type { Change } from '../port.js';

export const CHANNEL = 'stowage_changes';
const HEARTBEAT_MS = 1_000;
/** Silence after which the feed is not trusted. */
const STALE_MS = 3_000;
/** pg_notify payloads are limited to 8000 bytes: a bigger batch says "everything". */
const MAX_PAYLOAD = 7_500;
/** Longest a writer waits for the other replicas' acknowledgements. */
const ACK_TIMEOUT_MS = 2_000;

/** A change announcement (c), a heartbeat (hb), or an acknowledgement of another's announcement (ack). */
interface Message { o: string; s: number; c?: readonly Change[]; hb?: true; ack?: { to: string; s: number }; bye?: true }

interface Waiter { pending: Set<string>; done: () => void }

export class PgChangeFeed extends LocalChangeFeed {
  private seq = 0;
  private lastHeard = 0;
  private listening = false;
  private readonly waiting = new Map<number, Waiter>();
  /** Other replicas by origin, and when they were last heard. */
  private readonly peers = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly sql: Sql, private readonly origin: string, private readonly log: Logger) {
    super();
  }

  async start(): Promise<void> {
    await this.sql.listen(CHANNEL, (payload) => this.hear(payload), () => {
      // (Re)connected: anything announced while we were away is lost to us.
      if (this.listening) this.log.warn('metadata change feed reconnected; cached index data dropped');
      this.listening = true;
      this.publish({ kind: 'all' });
    });
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.timer.unref();
    await this.heartbeat();
  }

  /** Live while our own heartbeats come back. */
  override get live(): boolean {
    return this.listening && Date.now() - this.lastHeard < STALE_MS;
  }

  /**
   * A message for a batch's transaction (its pg_notify payload), and `settled`: resolves when the
   * announcement has come back and every replica that was live when it was made has acknowledged
   * it; after ACK_TIMEOUT_MS at most (a replica that died meanwhile). The waiter is in place before
   * the transaction is sent: an echo can beat the commit's own reply. `cancel` if the batch failed.
   */
  announce(changes: readonly Change[]): { payload: string; settled: () => Promise<void>; cancel: () => void } {
    const seq = ++this.seq;
    let payload = JSON.stringify({ o: this.origin, s: seq, c: changes } satisfies Message);
    if (payload.length > MAX_PAYLOAD) payload = JSON.stringify({ o: this.origin, s: seq, c: [{ kind: 'all' }] } satisfies Message);
    if (!this.live) return { payload, settled: () => Promise.resolve(), cancel: () => undefined };
    const now = Date.now();
    const pending = new Set([this.origin]);
    for (const [peer, heard] of this.peers) if (now - heard < STALE_MS) pending.add(peer);
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolve) => {
      this.waiting.set(seq, { pending, done: () => { clearTimeout(timer); resolve(); } });
    });
    return {
      payload,
      settled: () => {
        if (this.waiting.has(seq)) {
          timer = setTimeout(() => {
            this.log.warn({ seq, missing: [...pending] }, 'metadata change not acknowledged in time: those replicas may serve the old state for a moment');
            this.finish(seq);
          }, ACK_TIMEOUT_MS);
          timer.unref();
        }
        return done;
      },
      cancel: () => this.finish(seq),
    };
  }

  /** Stops waiting for `seq`'s acknowledgements. */
  private finish(seq: number): void {
    const w = this.waiting.get(seq);
    this.waiting.delete(seq);
    w?.done();
  }

  private hear(payload: string): void {
    let m: Message;
    try {
      m = JSON.parse(payload) as Message;
    } catch {
      return;
    }
    if (m.o === this.origin) this.lastHeard = Date.now();
    else if (m.bye) return this.forgetPeer(m.o);
    else this.peers.set(m.o, Date.now());
    if (m.ack) {
      if (m.ack.to === this.origin) this.acknowledged(m.ack.s, m.o);
      return;
    }
    for (const c of m.c ?? []) this.publish(c);
    if (m.o === this.origin) this.acknowledged(m.s, m.o);
    else if (m.c) void this.send({ o: this.origin, s: ++this.seq, ack: { to: m.o, s: m.s } });
  }

  /** A replica said goodbye: writers stop waiting for it. */
  private forgetPeer(peer: string): void {
    this.peers.delete(peer);
    for (const [seq] of this.waiting) this.acknowledged(seq, peer);
  }

  private acknowledged(seq: number, by: string): void {
    const w = this.waiting.get(seq);
    if (!w) return;
    w.pending.delete(by);
    if (w.pending.size === 0) this.finish(seq);
  }

  private async send(m: Message): Promise<void> {
    try {
      await this.sql.notify(CHANNEL, JSON.stringify(m));
    } catch {
      // The database is unreachable: the feed goes stale on its own (and writers stop waiting).
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    const wasLive = this.live;
    await this.send({ o: this.origin, s: ++this.seq, hb: true });
    const now = Date.now();
    for (const [peer, heard] of this.peers) if (now - heard > 10 * STALE_MS) this.peers.delete(peer);
    if (wasLive && !this.live) this.log.warn('metadata change feed silent: index caches bypassed until it is back');
  }

  /** Stops heartbeats and tells the other replicas not to wait for this one any more. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.send({ o: this.origin, s: ++this.seq, bye: true });
    clearInterval(this.timer);
    for (const w of this.waiting.values()) w.done();
    this.waiting.clear();
  }
}
