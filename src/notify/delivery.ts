/**
 * One delivery loop per endpoint: the oldest undelivered events (up to `batch`) in one envelope,
 * POSTed; a 2xx or 3xx answer (redirects followed) removes them from the outbox, anything else is
 * retried: after `backoff`, and once `threshold` deliveries in a row have failed, after a wait
 * that doubles with each further failure (up to 5 minutes). Events leave in outbox order and the
 * next batch waits for this one, so an endpoint sees them in order; a batch whose answer was lost
 * (or that was in flight at a crash) is sent again: at least once.
 *
 * Replicas share the outbox: only the holder of the endpoint's lease delivers, so each event goes
 * out once and in order. A holder that dies stops renewing; after LEASE_MS another replica takes
 * over and sends what was not acknowledged (at least once, still in order).
 */
import type { Logger } from 'pino';
import type { LeaseStore, OutboxStore } from '../metadata/port.js';
import type { Endpoint } from './endpoint.js';
import { EVENTS_MEDIA_TYPE } from './sink.js';

const MAX_WAIT_MS = 5 * 60_000;
/** How long a delivering replica's claim on an endpoint lasts without renewal. */
export const LEASE_MS = 10_000;
/** How often a waiting loop looks again: for a lease, or for events its change feed may not have told it of. */
const POLL_MS = 2_000;

export function retryDelay(failures: number, backoffMs: number, threshold: number): number {
  if (failures < threshold) return backoffMs;
  return Math.min(backoffMs * 2 ** (failures - threshold + 1), Math.max(MAX_WAIT_MS, backoffMs));
}

export interface DeliveryHooks {
  delivered(endpoint: Endpoint, events: number): void;
  failed(endpoint: Endpoint): void;
}

export class DeliveryLoop {
  private readonly stopper = new AbortController();
  private running: Promise<void> | undefined;
  /** True while a POST is out. */
  busy = false;
  /** True while this process holds the endpoint's lease (it is the one delivering). */
  holding = false;

  constructor(
    readonly endpoint: Endpoint,
    private readonly outbox: OutboxStore,
    private readonly leases: LeaseStore,
    /** This process, as lease holder. */
    private readonly holder: string,
    private readonly log: Logger,
    private readonly hooks: DeliveryHooks,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops after the POST in flight (which is cut: its events stay in the outbox). */
  async stop(): Promise<void> {
    this.stopper.abort();
    this.endpoint.wake();
    await this.running;
  }

  private async loop(): Promise<void> {
    const stop = this.stopper.signal;
    while (!stop.aborted) {
      try {
        await this.round();
      } catch (err) {
        // The index is unreachable (or a query failed): nothing was acknowledged; look again later.
        this.log.warn({ endpoint: this.endpoint.name, err }, 'notification delivery paused: the outbox could not be read');
        await sleep(POLL_MS, stop);
      }
    }
    this.holding = false;
    await this.leases.release(`notify:${this.endpoint.name}`, this.holder).catch(() => undefined);
  }

  /** Holds the lease, then delivers one batch or waits for events. */
  private async round(): Promise<void> {
    const e = this.endpoint;
    const stop = this.stopper.signal;
    // Longer than one POST may take, so no other replica starts on this batch meanwhile.
    const ttl = LEASE_MS + e.options.timeoutMs;
    this.holding = await this.leases.acquire(`notify:${e.name}`, this.holder, ttl);
    if (!this.holding) {
      await e.recount();
      await sleep(POLL_MS, stop);
      return;
    }
    const rows = await this.outbox.peek(e.name, e.options.batch);
    if (rows.length === 0) {
      e.pending = 0;
      await Promise.race([e.nextEvent(), sleep(POLL_MS, stop)]);
      return;
    }
    const error = await this.post(rows.map((r) => r.event));
    if (stop.aborted) return;
    if (error === undefined) {
      await e.acknowledge(rows.map((r) => r.id));
      this.hooks.delivered(e, rows.length);
      if (e.failures >= e.options.threshold) this.log.info({ endpoint: e.name, after: e.failures }, 'notification endpoint accepts events again');
      e.failures = 0;
      return;
    }
    e.failures++;
    e.failedDeliveries++;
    this.hooks.failed(e);
    const wait = retryDelay(e.failures, e.options.backoffMs, e.options.threshold);
    if (e.failures === e.options.threshold) {
      this.log.warn({ endpoint: e.name, err: error, failures: e.failures, pending: e.pending }, 'notification endpoint down: backing off');
    } else {
      this.log.debug({ endpoint: e.name, err: error, failures: e.failures, retryInMs: wait }, 'notification delivery failed');
    }
    await sleep(wait, stop);
  }

  /** undefined when delivered, else what went wrong. */
  private async post(events: string[]): Promise<string | undefined> {
    const o = this.endpoint.options;
    const headers = new Headers();
    for (const [name, values] of Object.entries(o.headers)) for (const v of values) headers.append(name, v);
    headers.set('content-type', EVENTS_MEDIA_TYPE);
    this.busy = true;
    try {
      const res = await fetch(o.url, {
        method: 'POST', headers, body: `{"events":[${events.join(',')}]}`, redirect: 'follow',
        signal: AbortSignal.any([AbortSignal.timeout(o.timeoutMs), this.stopper.signal]),
      });
      await res.arrayBuffer();
      return res.status >= 200 && res.status < 400 ? undefined : `answered ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      return e.cause?.code ?? e.cause?.message ?? e.message;
    } finally {
      this.busy = false;
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
