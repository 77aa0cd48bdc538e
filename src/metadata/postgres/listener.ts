/**
 * Every replica's change feed over PostgreSQL LISTEN/NOTIFY. A write batch that changes something
 * ends with pg_notify in its own transaction, so the changes are announced exactly when they
 * commit; every replica (the writer too) hears them on a dedicated connection and drops what its
 * caches hold of them.
 *
 * Read-after-write across replicas: the writer does not answer its client until every live
 * replica has said it applied the change (each acknowledges what it hears from another with a
 * NOTIFY of its own; the live replicas are those whose messages were heard lately). Hearing the
 * notification is not enough by itself: a replica's event loop may take a client's request before
 * the database connection's data, even when the notification arrived first.
 *
 * Joining: a writer waits only for the replicas it has heard of, so a replica that has just
 * (re)connected caches nothing until every replica it hears has welcomed it. It says hello; each
 * other replica adds it to those it waits for, lets its writes already under way commit (their
 * announcements leave before the welcome, and NOTIFYs arrive in commit order), then welcomes it.
 * The newcomer waits one heartbeat period to hear from everyone before trusting the welcomes.
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
/** Silence after which this replica's own feed is not trusted. */
const STALE_MS = 3_000;
/**
 * How long a writer keeps waiting for a replica it last heard from: a heartbeat longer than the
 * replica trusts itself, so that the two clocks' readings of one heartbeat never leave a moment
 * where a replica caches and its writers have stopped waiting for it.
 */
const PEER_WINDOW_MS = STALE_MS + HEARTBEAT_MS;
/** A newcomer listens this long after its hello comes back, so that it hears every live replica. */
const JOIN_QUIET_MS = HEARTBEAT_MS + 500;
/** A newcomer stops waiting for the welcome of a replica that heartbeats but has not welcomed it. */
const JOIN_TIMEOUT_MS = 5_000;
/** pg_notify payloads are limited to 8000 bytes: a bigger batch says "everything". */
const MAX_PAYLOAD = 7_500;
/** Longest a writer waits for the other replicas' acknowledgements. */
const ACK_TIMEOUT_MS = 2_000;

/**
 * A change announcement (c), a heartbeat (hb), a newcomer's hello (hi), a goodbye (bye), or an
 * acknowledgement (ack) of another's announcement or hello (a welcome).
 */
interface Message { o: string; s: number; c?: readonly Change[]; hb?: true; hi?: true; ack?: { to: string; s: number }; bye?: true }

interface Waiter { pending: Set<string>; done: () => void }

/** This replica's hello while it is joining: when it came back, and who has welcomed it. */
interface Joining { seq: number; heardAt?: number; welcomedBy: Set<string> }

export class PgChangeFeed extends LocalChangeFeed {
  private seq = 0;
  private lastHeard = 0;
  private listening = false;
  private joined = false;
  private joining: Joining | undefined;
  private readonly waiting = new Map<number, Waiter>();
  /** Batches announced and not yet committed or abandoned: a welcome waits for them. */
  private readonly underWay = new Set<Promise<void>>();
  /** Other replicas by origin, and when they were last heard. */
  private readonly peers = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private firstEcho: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly sql: Sql, private readonly origin: string, private readonly log: Logger) {
    super();
  }

  /** Listens, and returns once this replica hears itself (or after STALE_MS, not yet live). */
  async start(): Promise<void> {
    const echoed = new Promise<void>((resolve) => {
      this.firstEcho = resolve;
      setTimeout(resolve, STALE_MS).unref();
    });
    await this.sql.listen(CHANNEL, (payload) => this.hear(payload), () => {
      // (Re)connected: anything announced while we were away is lost to us, and the others may
      // have stopped waiting for us.
      if (this.listening) this.log.warn('metadata change feed reconnected; cached index data dropped');
      this.listening = true;
      this.joined = false;
      this.publish({ kind: 'all' });
      void this.sayHello();
    });
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.timer.unref();
    await echoed;
  }

  /** Caches may be trusted: this replica hears itself and every replica waits for it. */
  override get live(): boolean {
    return this.joined && this.hearing;
  }

  /** This replica hears the channel: its own messages come back. */
  private get hearing(): boolean {
    return this.listening && Date.now() - this.lastHeard < STALE_MS;
  }

  /**
   * A message for a batch's transaction (its pg_notify payload), and `settled`: resolves when the
   * announcement has come back and every replica that was live when it was made has acknowledged
   * it; after ACK_TIMEOUT_MS at most (a replica that died meanwhile). The waiter is in place before
   * the transaction is sent: an echo can beat the commit's own reply. Call `settled` once the
   * transaction committed, `cancel` if it failed.
   */
  announce(changes: readonly Change[]): { payload: string; settled: () => Promise<void>; cancel: () => void } {
    const seq = ++this.seq;
    let payload = JSON.stringify({ o: this.origin, s: seq, c: changes } satisfies Message);
    if (payload.length > MAX_PAYLOAD) payload = JSON.stringify({ o: this.origin, s: seq, c: [{ kind: 'all' }] } satisfies Message);
    const landed = this.track();
    if (!this.hearing) return { payload, settled: () => { landed(); return Promise.resolve(); }, cancel: landed };
    const now = Date.now();
    const pending = new Set([this.origin]);
    for (const [peer, heard] of this.peers) if (now - heard < PEER_WINDOW_MS) pending.add(peer);
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolve) => {
      this.waiting.set(seq, { pending, done: () => { clearTimeout(timer); resolve(); } });
    });
    return {
      payload,
      settled: () => {
        landed();
        if (this.waiting.has(seq)) {
          timer = setTimeout(() => {
            this.log.warn({ seq, missing: [...pending] }, 'metadata change not acknowledged in time: those replicas may serve the old state for a moment');
            this.finish(seq);
          }, ACK_TIMEOUT_MS);
          timer.unref();
        }
        return done;
      },
      cancel: () => { landed(); this.finish(seq); },
    };
  }

  /** Counts a batch as under way until the returned function is called. */
  private track(): () => void {
    let land = (): void => undefined;
    const p = new Promise<void>((resolve) => { land = resolve; });
    this.underWay.add(p);
    return () => { this.underWay.delete(p); land(); };
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
    const now = Date.now();
    if (m.o === this.origin) {
      this.lastHeard = now;
      this.firstEcho?.();
      this.firstEcho = undefined;
      if (m.hi) this.helloCameBack(m.s, now);
    } else if (m.bye) {
      return this.forgetPeer(m.o);
    } else {
      this.peers.set(m.o, now);
    }
    if (m.ack) {
      if (m.ack.to === this.origin) this.acknowledged(m.ack.s, m.o);
      return;
    }
    if (m.hi) {
      if (m.o !== this.origin) void this.welcome(m.o, m.s);
      return;
    }
    for (const c of m.c ?? []) this.publish(c);
    if (m.o === this.origin) this.acknowledged(m.s, m.o);
    else if (m.c) void this.send({ o: this.origin, s: ++this.seq, ack: { to: m.o, s: m.s } });
  }

  private async sayHello(): Promise<void> {
    const seq = ++this.seq;
    this.joining = { seq, welcomedBy: new Set() };
    await this.send({ o: this.origin, s: seq, hi: true });
  }

  private helloCameBack(seq: number, now: number): void {
    if (this.joining?.seq !== seq) return;
    this.joining.heardAt = now;
    setTimeout(() => this.checkJoined(), JOIN_QUIET_MS).unref();
  }

  /**
   * A newcomer: every batch announced from now on waits for it (it is a peer now). Those already
   * under way did not, so they must commit before the welcome: their NOTIFYs then reach the
   * newcomer first.
   */
  private async welcome(newcomer: string, hello: number): Promise<void> {
    await Promise.all([...this.underWay]);
    await this.send({ o: this.origin, s: ++this.seq, ack: { to: newcomer, s: hello } });
  }

  /** Joined once the quiet period is over and every replica heard lately has welcomed us. */
  private checkJoined(): void {
    const j = this.joining;
    if (this.joined || !j || j.heardAt === undefined) return;
    const now = Date.now();
    if (now - j.heardAt < JOIN_QUIET_MS) return;
    const missing = [...this.peers].filter(([peer, heard]) => now - heard < STALE_MS && !j.welcomedBy.has(peer)).map(([peer]) => peer);
    if (missing.length > 0 && now - j.heardAt < JOIN_TIMEOUT_MS) return;
    if (missing.length > 0) this.log.warn({ missing }, 'metadata change feed: replicas did not welcome this one in time; caching anyway');
    else this.log.debug({ welcomedBy: [...j.welcomedBy] }, 'metadata change feed joined: caches in use');
    this.joined = true;
    this.joining = undefined;
    this.publish({ kind: 'all' });
  }

  /** A replica said goodbye: writers stop waiting for it. */
  private forgetPeer(peer: string): void {
    this.peers.delete(peer);
    for (const [seq] of this.waiting) this.acknowledged(seq, peer);
    this.checkJoined();
  }

  private acknowledged(seq: number, by: string): void {
    if (this.joining?.seq === seq && by !== this.origin) {
      this.joining.welcomedBy.add(by);
      return this.checkJoined();
    }
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
    const wasHearing = this.hearing;
    await this.send({ o: this.origin, s: ++this.seq, hb: true });
    const now = Date.now();
    for (const [peer, heard] of this.peers) if (now - heard > 10 * STALE_MS) this.peers.delete(peer);
    if (wasHearing && !this.hearing) this.log.warn('metadata change feed silent: index caches bypassed until it is back');
    this.checkJoined();
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
