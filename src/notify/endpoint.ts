/**
 * One webhook endpoint's state, shared by the sink (which adds events) and its delivery loop:
 * the filter, the bound on undelivered events, the counters behind the metrics, a wake-up signal.
 */
import type { Logger } from 'pino';
import type { Outbox } from '../metadata/outbox.js';
import type { EventAction, EventInput } from './events.js';

export interface EndpointOptions {
  name: string;
  url: string;
  headers: Record<string, string[]>;
  timeoutMs: number;
  /** Failed deliveries in a row before the endpoint counts as down (then the wait doubles). */
  threshold: number;
  backoffMs: number;
  disabled: boolean;
  /** ignoredmediatypes and ignore.mediatypes together. */
  ignoredMediaTypes: string[];
  ignoredActions: EventAction[];
  /** Most undelivered events kept; beyond it the oldest are dropped. */
  maxPending: number;
  /** Most events per envelope. */
  batch: number;
}

const DROP_LOG_INTERVAL_MS = 10_000;

export class Endpoint {
  pending: number;
  delivered = 0;
  failedDeliveries = 0;
  dropped = 0;
  /** Failed deliveries in a row (0 while the endpoint accepts). */
  failures = 0;
  private wakeUp: (() => void) | undefined;
  private droppedSinceLog = 0;
  private lastDropLog = 0;

  constructor(readonly options: EndpointOptions, private readonly outbox: Outbox, private readonly log: Logger) {
    this.pending = outbox.count(options.name);
  }

  get name(): string { return this.options.name; }

  accepts(event: EventInput): boolean {
    const o = this.options;
    if (o.disabled || o.ignoredActions.includes(event.action)) return false;
    const mediaType = event.target.mediaType;
    return mediaType === undefined || !o.ignoredMediaTypes.includes(mediaType);
  }

  /** Adds a serialized event (inside the caller's transaction) and keeps the outbox bounded. */
  add(event: string): void {
    this.outbox.add(this.name, event);
    this.pending++;
    if (this.pending > this.options.maxPending) {
      const dropped = this.outbox.dropOldest(this.name, this.pending - this.options.maxPending);
      this.pending -= dropped;
      this.dropped += dropped;
      this.droppedSinceLog += dropped;
      const now = Date.now();
      if (now - this.lastDropLog >= DROP_LOG_INTERVAL_MS) {
        this.log.warn({ endpoint: this.name, dropped: this.droppedSinceLog, droppedTotal: this.dropped, maxpending: this.options.maxPending },
          'notification outbox full: oldest undelivered events dropped');
        this.lastDropLog = now;
        this.droppedSinceLog = 0;
      }
    }
    this.wakeUp?.();
  }

  /** Resolves at the next add() (or wake()). */
  nextEvent(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = () => { this.wakeUp = undefined; resolve(); };
    });
  }

  wake(): void { this.wakeUp?.(); }

  /** Delivered through id: removed from the outbox. */
  acknowledge(throughId: number, count: number): void {
    this.outbox.remove(this.name, throughId);
    this.pending = Math.max(0, this.pending - count);
    this.delivered += count;
  }
}
