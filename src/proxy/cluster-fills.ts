/**
 * One upstream fetch per blob across replicas. A replica about to fetch a blob takes the index's
 * lease `fill:<digest>` (holder "<instance id> <advertise URL>") and renews it while it fetches;
 * a replica that finds the lease held streams the blob from the holder (GET /_stowage/fills/<digest>
 * on its advertise URL, http/peer.ts) as the holder receives it, checking the digest on its own
 * side too; it never fetches the blob itself. If the holder dies, its lease lapses within
 * LEASE_MS and the next request takes it over; a client that was streaming from the dead holder
 * sees its connection cut (never wrong bytes: the last byte is held back until the digest checks).
 *
 * Peer requests carry an HMAC of the digest and a timestamp, keyed with the index's shared secret
 * `peer`: only replicas of this cluster can read fills this way (access rules were applied by the
 * replica the client asked).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import type { LeaseStore } from '../metadata/port.js';
import { createDigester, digestAlgorithm, digestFromHash, type Digest } from '../oci/digest.js';

/** A fill lease lasts this long without renewal: how soon another replica takes over from a dead one. */
export const LEASE_MS = 6_000;
const RENEW_MS = 2_000;
/** Peer requests older (or newer) than this are refused: a captured one cannot be replayed later. */
const SIGNATURE_WINDOW_S = 60;
export const PEER_HEADER = 'x-stowage-peer';
export const PEER_PATH = '/_stowage/fills/';

export type Claim = { mine: true; release(): void } | { mine: false; owner: string };

export interface PeerFill { size: number | undefined; body: Readable }

export class ClusterFills {
  private readonly agent = new Agent({ connect: { timeout: 2_000, rejectUnauthorized: false }, keepAliveTimeout: 30_000 });
  /** "<instance id> <advertise URL>": the lease holder this replica writes. */
  readonly self: string;

  constructor(
    private readonly leases: LeaseStore,
    instanceId: string,
    readonly advertiseUrl: string,
    private readonly secret: Buffer,
    private readonly log: Logger,
  ) {
    this.self = `${instanceId} ${advertiseUrl}`;
  }

  /** Takes the fetch of digest for this replica, or says who has it. */
  async claim(digest: Digest): Promise<Claim> {
    const name = `fill:${digest}`;
    if (await this.leases.acquire(name, this.self, LEASE_MS)) {
      const timer = setInterval(() => {
        void this.leases.acquire(name, this.self, LEASE_MS).catch((err: unknown) => this.log.warn({ err, digest }, 'fill lease could not be renewed'));
      }, RENEW_MS);
      timer.unref();
      let released = false;
      return {
        mine: true,
        release: () => {
          if (released) return;
          released = true;
          clearInterval(timer);
          void this.leases.release(name, this.self).catch(() => undefined);
        },
      };
    }
    const holder = await this.leases.holder(name);
    // Released between the two questions: ask again (the blob is probably stored by now).
    if (holder === undefined) return this.claim(digest);
    return { mine: false, owner: holder.slice(holder.indexOf(' ') + 1) };
  }

  /** The owner's fill of digest: its size (HEAD), or undefined when it has none (finished, failed). Throws when the owner cannot be reached. */
  async peerSize(owner: string, digest: Digest): Promise<{ size: number | undefined } | undefined> {
    const res = await request(`${owner}${PEER_PATH}${digest}`, { method: 'HEAD', dispatcher: this.agent, headers: this.sign(digest), headersTimeout: 5_000 });
    await res.body.dump();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw new Error(`peer ${owner} answered ${res.statusCode}`);
    const length = res.headers['content-length'];
    return { size: typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined };
  }

  /** Streams the owner's fill, verified here too; undefined when the owner has none any more. */
  async openPeer(owner: string, digest: Digest): Promise<PeerFill | undefined> {
    const res = await request(`${owner}${PEER_PATH}${digest}`, { method: 'GET', dispatcher: this.agent, headers: this.sign(digest), headersTimeout: 10_000, bodyTimeout: 60_000 });
    if (res.statusCode === 404) {
      await res.body.dump();
      return undefined;
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`peer ${owner} answered ${res.statusCode}`);
    }
    const length = res.headers['content-length'];
    const size = typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined;
    const verified = new VerifyingStream(digest);
    res.body.on('error', (err) => verified.destroy(err));
    return { size, body: res.body.pipe(verified) };
  }

  sign(digest: string, now = Date.now()): Record<string, string> {
    const ts = Math.floor(now / 1000);
    return { [PEER_HEADER]: `${ts}.${this.mac(digest, ts)}` };
  }

  /** True when a peer request for digest carries a fresh signature of this cluster. */
  verify(digest: string, header: string | undefined, now = Date.now()): boolean {
    const m = /^(\d+)\.([0-9a-f]{64})$/.exec(header ?? '');
    if (!m) return false;
    const ts = Number(m[1]);
    if (Math.abs(now / 1000 - ts) > SIGNATURE_WINDOW_S) return false;
    return timingSafeEqual(Buffer.from(m[2]!, 'hex'), Buffer.from(this.mac(digest, ts), 'hex'));
  }

  private mac(digest: string, ts: number): string {
    return createHmac('sha256', this.secret).update(`${digest} ${ts}`).digest('hex');
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/**
 * Passes a peer's bytes on while hashing them, always holding back the last chunk received: it
 * goes out only once the stream has ended and the digest checks, so a client never gets a complete
 * response of wrong bytes. (A chunk, not a byte: no copies, one write per chunk.)
 */
export class VerifyingStream extends Transform {
  private readonly hash;
  private held: Buffer | undefined;

  constructor(private readonly digest: Digest) {
    super();
    this.hash = createDigester(digestAlgorithm(digest));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    const previous = this.held;
    this.held = chunk;
    cb(null, previous);
  }

  override _flush(cb: TransformCallback): void {
    const actual = digestFromHash(digestAlgorithm(this.digest), this.hash);
    if (actual !== this.digest) return cb(new Error(`peer sent bytes that hash to ${actual}, not ${this.digest}`));
    cb(null, this.held);
  }
}
