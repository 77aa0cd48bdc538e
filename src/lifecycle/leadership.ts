/**
 * Which replica runs the cluster-wide duties (cache eviction, garbage collection, upload purging,
 * proxy TTL expiry): the holder of the index's `maintenance` lease. The lease is renewed every
 * RENEW_MS and lasts TTL_MS, so a replica that dies hands the duties on within TTL_MS. A single
 * process simply always holds it. The duties stay safe if two ever overlap (every removal checks
 * the index again around the act: sweep.ts); the lease is what keeps them from running N times.
 */
import type { Logger } from 'pino';
import type { LeaseStore } from '../metadata/port.js';

const LEASE = 'maintenance';
const TTL_MS = 30_000;
const RENEW_MS = 10_000;
/** Leadership is given up locally this long before the lease could expire in the database. */
const MARGIN_MS = 5_000;

export class Leadership {
  private heldUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private wasLeader = false;

  constructor(private readonly leases: LeaseStore, private readonly holder: string, private readonly log: Logger) {}

  /** True while this process may run the duties. */
  isLeader(): boolean {
    return Date.now() < this.heldUntil;
  }

  async start(): Promise<void> {
    await this.renew();
    this.timer = setInterval(() => void this.renew(), RENEW_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.isLeader()) await this.leases.release(LEASE, this.holder).catch(() => undefined);
    this.heldUntil = 0;
  }

  private async renew(): Promise<void> {
    const asked = Date.now();
    try {
      if (await this.leases.acquire(LEASE, this.holder, TTL_MS)) this.heldUntil = asked + TTL_MS - MARGIN_MS;
      else this.heldUntil = 0;
    } catch (err) {
      this.log.debug({ err }, 'maintenance lease could not be renewed');
    }
    const leader = this.isLeader();
    if (leader !== this.wasLeader) {
      this.log.info({ holder: this.holder }, leader ? 'this replica runs eviction, GC, upload purging and expiry now' : 'another replica runs the cluster-wide duties now');
      this.wasLeader = leader;
    }
  }
}
