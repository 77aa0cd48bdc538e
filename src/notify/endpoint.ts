/**
 * One webhook endpoint's state, shared by the sink (which adds events) and its delivery loop:
 * the filter, the bound on undelivered events, the counters behind the metrics, a wake-up signal.
 * With replicas the outbox is shared: `pending` is this process's view, set from the outbox
 * whenever the delivery loop or a trim counts it, and moved by what this process adds and delivers.
 */
import type { Logger } from 'pino';
import type { MetadataWriter, OutboxStore } from '../metadata/port.js';
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
  pending = 0;
  delivered = 0;
  failedDeliveries = 0;
  dropped = 0;
  /** Failed deliveries in a row (0 while the endpoint accepts). */
  failures = 0;
  private wakeUp: (() => void) | undefined;
  private droppedSinceLog = 0;
  private lastDropLog = 0;
  private trimming: Promise<void> | undefined;

  constructor(readonly options: EndpointOptions, private readonly outbox: OutboxStore, private readonly log: Logger) {}

  /** Reads the outbox's real count (at start, and when other replicas may have added or delivered). */
  async recount(): Promise<void> {
    this.pending = await this.outbox.count(this.name);
  }

  get name(): string { return this.options.name; }

  accepts(event: EventInput): boolean {
    const o = this.options;
    if (o.disabled || o.ignoredActions.includes(event.action)) return false;
    const mediaType = event.target.mediaType;
    return mediaType === undefined || !o.ignoredMediaTypes.includes(mediaType);
  }

  /** Adds a serialized event to the caller's write batch; past maxpending, the oldest go once it commits. */
  add(event: string, batch: MetadataWriter): void {
    batch.addOutbox(this.name, event);
    this.pending++;
    if (this.pending > this.options.maxPending) this.trimming ??= this.trim().finally(() => { this.trimming = undefined; });
    // The delivery loop wakes when the batch has committed: the index's change feed says so.
  }

  /** Drops the oldest events beyond maxpending, counted in the outbox (other replicas add too). */
  private async trim(): Promise<void> {
    await new Promise((r) => setTimeout(r, 0)); // after the batch that pushed us over has committed
    try {
      const excess = (await this.outbox.count(this.name)) - this.options.maxPending;
      const dropped = excess > 0 ? await this.outbox.dropOldest(this.name, excess) : 0;
      await this.recount();
      if (dropped === 0) return;
      this.dropped += dropped;
      this.droppedSinceLog += dropped;
      const now = Date.now();
      if (now - this.lastDropLog >= DROP_LOG_INTERVAL_MS) {
        this.log.warn({ endpoint: this.name, dropped: this.droppedSinceLog, droppedTotal: this.dropped, maxpending: this.options.maxPending },
          'notification outbox full: oldest undelivered events dropped');
        this.lastDropLog = now;
        this.droppedSinceLog = 0;
      }
    } catch (err) {
      this.log.warn({ endpoint: this.name, err }, 'could not trim the notification outbox');
    }
  }

  /** Resolves at the next add() (or wake()). */
  nextEvent(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = () => { this.wakeUp = undefined; resolve(); };
    });
  }

  wake(): void { this.wakeUp?.(); }

  /** Delivered: these events leave the outbox (exactly these: another replica may have added rows in between). */
  async acknowledge(ids: readonly number[]): Promise<void> {
    const removed = await this.outbox.remove(this.name, ids);
    this.pending = Math.max(0, this.pending - removed);
    this.delivered += ids.length;
  }
}
