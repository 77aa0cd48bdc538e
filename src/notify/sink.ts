/**
 * The event sink the registry and the cache write to: builds registry:2's event JSON once and adds
 * it to the outbox of every endpoint that wants it, in the caller's write batch, so the event
 * commits together with the content it reports (see README, Notifications).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { MetadataIndex, MetadataWriter } from '../metadata/port.js';
import type { Endpoint } from './endpoint.js';
import type { EventInput, EventSink } from './events.js';
import { requestContext } from './request-context.js';

/** registry:2's envelope media type (distribution 2.x). */
export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

export interface SourceRecord { addr: string; instanceID: string }

/** How long pull events wait in memory to be written together (see record()). */
export const PULL_BATCH_MS = 20;

export class OutboxSink implements EventSink {
  private pulls: Array<{ endpoints: Endpoint[]; event: string }> = [];
  private pullTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly endpoints: readonly Endpoint[],
    private readonly source: SourceRecord,
    private readonly includeReferences: boolean,
    private readonly metadata: MetadataIndex,
    private readonly log: Logger,
  ) {}

  /**
   * Push, mount, delete and fetch events go into the caller's write batch. Pull (and policy) events
   * change nothing to commit with, and come by the thousand per second: they are written together every
   * PULL_BATCH_MS (one commit each would cost ~100 µs in SQLite, a round trip in PostgreSQL), or
   * in the next other event's batch, ahead of it, which keeps the outbox in the order events happened.
   */
  record(input: EventInput, batch?: MetadataWriter): void {
    const wanting = this.endpoints.filter((e) => e.accepts(input));
    if (wanting.length === 0) return;
    const event = JSON.stringify(this.event(input));
    if (input.action === 'pull' || input.action === 'policy' || !batch) {
      this.pulls.push({ endpoints: wanting, event });
      this.pullTimer ??= setTimeout(() => void this.flushPulls(), PULL_BATCH_MS);
      return;
    }
    this.takePulls(batch);
    for (const e of wanting) e.add(event, batch);
  }

  /** Writes the waiting pull events (also at shutdown). */
  async flushPulls(): Promise<void> {
    if (this.pulls.length === 0) return;
    await this.metadata.write((w) => this.takePulls(w)).catch((err: unknown) => {
      this.log.warn({ err }, 'pull events could not be written to the outbox; dropped');
    });
  }

  private takePulls(w: MetadataWriter): void {
    clearTimeout(this.pullTimer);
    this.pullTimer = undefined;
    const pulls = this.pulls;
    this.pulls = [];
    for (const p of pulls) for (const e of p.endpoints) e.add(p.event, w);
  }

  private event(input: EventInput): Record<string, unknown> {
    const req = requestContext.getStore();
    const t = input.target;
    // registry:2 links to the content, except for deletes (it is gone).
    const path = t.digest === undefined || input.action === 'delete' ? undefined : t.kind === 'blob' ? 'blobs' : 'manifests';
    const target = dropUndefined({
      mediaType: t.mediaType,
      size: t.size,
      digest: t.digest,
      length: t.size,
      repository: t.repository,
      fromRepository: t.fromRepository,
      url: req && path ? `${req.baseUrl}/v2/${t.repository}/${path}/${t.digest}` : undefined,
      tag: t.tag,
      references: this.includeReferences ? nonEmpty(typeof t.references === 'function' ? t.references() : t.references) : undefined,
    });
    const user = req?.user();
    return dropUndefined({
      id: randomUUID(),
      timestamp: new Date().toISOString(),
      action: input.action,
      target,
      request: req ? { id: req.id, addr: req.addr, host: req.host, method: req.method, useragent: req.useragent } : undefined,
      actor: user !== undefined ? { name: user } : {},
      source: this.source,
      stowage: input.cache !== undefined || input.upstream !== undefined || input.policy !== undefined
        ? dropUndefined({ cache: input.cache, upstream: input.upstream, policy: input.policy }) : undefined,
    });
  }
}

function nonEmpty<T>(list: T[] | undefined): T[] | undefined {
  return list && list.length > 0 ? list : undefined;
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}
