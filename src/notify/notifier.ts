/**
 * Notifications, assembled: an Endpoint per configured webhook, the sink the registry writes to,
 * a delivery loop per endpoint, and the metrics (pending, delivered, failed, dropped per
 * endpoint). Outbox rows of endpoints no longer configured are dropped at start, with a log line.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { MetadataIndex } from '../metadata/port.js';
import { DeliveryLoop } from './delivery.js';
import { Endpoint, type EndpointOptions } from './endpoint.js';
import { NO_EVENTS, type EventSink } from './events.js';
import { OutboxSink, type SourceRecord } from './sink.js';

export interface NotifyOptions {
  endpoints: EndpointOptions[];
  includeReferences: boolean;
  source: SourceRecord;
}

export class Notifier {
  readonly sink: EventSink;
  private readonly outboxSink: OutboxSink | undefined;
  readonly endpoints: Endpoint[];
  private readonly loops: DeliveryLoop[];

  /** `holder` names this process in the delivery leases (replicas share the outbox). */
  constructor(options: NotifyOptions, private readonly metadata: MetadataIndex, holder: string, private readonly log: Logger, registry?: Registry) {
    const outbox = metadata.outbox;
    this.endpoints = options.endpoints.map((o) => new Endpoint(o, outbox, log));
    const active = this.endpoints.filter((e) => !e.options.disabled);
    this.outboxSink = active.length > 0 ? new OutboxSink(active, options.source, options.includeReferences, metadata, log) : undefined;
    // Events committed anywhere (this process or another replica) wake the endpoint's loop.
    metadata.changes.subscribe((c) => {
      if (c.kind === 'outbox' || c.kind === 'all') for (const e of active) if (c.kind === 'all' || e.name === c.endpoint) e.wake();
    });
    this.sink = this.outboxSink ?? NO_EVENTS;

    const registers = registry ? [registry] : [];
    const delivered = new Counter({ name: 'stowage_notifications_delivered_total', help: 'Events delivered to each webhook endpoint', labelNames: ['endpoint'] as const, registers });
    const failed = new Counter({ name: 'stowage_notifications_failed_total', help: 'Failed deliveries (envelopes not accepted) per endpoint; each is retried', labelNames: ['endpoint'] as const, registers });
    const endpoints = this.endpoints;
    new Gauge({
      name: 'stowage_notifications_pending', help: 'Events waiting in the outbox of each endpoint', labelNames: ['endpoint'] as const, registers,
      collect() { for (const e of endpoints) this.set({ endpoint: e.name }, e.pending); },
    });
    new Gauge({
      name: 'stowage_notifications_dropped', help: 'Events dropped since start because the endpoint\'s outbox was full (maxpending)', labelNames: ['endpoint'] as const, registers,
      collect() { for (const e of endpoints) this.set({ endpoint: e.name }, e.dropped); },
    });
    for (const e of this.endpoints) { delivered.inc({ endpoint: e.name }, 0); failed.inc({ endpoint: e.name }, 0); }
    this.loops = active.map((e) => new DeliveryLoop(e, outbox, metadata.leases, holder, log, {
      delivered: (ep, n) => delivered.inc({ endpoint: ep.name }, n),
      failed: (ep) => failed.inc({ endpoint: ep.name }),
    }));
  }

  async start(): Promise<void> {
    const outbox = this.metadata.outbox;
    const configured = new Set(this.endpoints.map((e) => e.name));
    for (const name of await outbox.endpoints()) {
      if (!configured.has(name)) this.log.warn({ endpoint: name, dropped: await outbox.clear(name) }, 'undelivered events of an endpoint no longer configured dropped');
    }
    for (const e of this.endpoints) await e.recount();
    for (const l of this.loops) l.start();
    for (const e of this.endpoints) {
      this.log.info({ endpoint: e.name, pending: e.pending, disabled: e.options.disabled }, 'notification endpoint configured');
    }
  }

  /**
   * Shutdown: lets the loops deliver what is waiting, for up to ms, while their endpoints accept
   * events; then stops them. What is left stays in the outbox for the next start.
   */
  async flushAndStop(ms: number): Promise<void> {
    await this.outboxSink?.flushPulls();
    const end = Date.now() + ms;
    // An endpoint another replica delivers for is that replica's to finish.
    const settled = () => this.loops.every((l) => !l.holding || l.endpoint.pending === 0 || l.endpoint.failures > 0);
    while (!settled() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await Promise.all(this.loops.map((l) => l.stop()));
    const left = this.endpoints.filter((e) => e.pending > 0).map((e) => ({ endpoint: e.name, pending: e.pending }));
    if (left.length > 0) this.log.info({ left }, 'undelivered events kept in the outbox for the next start');
  }
}
