/**
 * Registry events, as the registry and the pull-through cache report them: the small interface
 * they are given (EventSink) and what they say (EventInput). The notify/ sink turns an input into
 * registry:2's event JSON (id, timestamp, request, actor, source) and writes it to the outbox.
 */
import type { MetadataWriter } from '../metadata/port.js';

/**
 * registry:2's actions, plus `fetch`: stowage stored content from an upstream, and `policy`: the
 * signature policy refused (enforce) or let through unsigned (warn) a manifest.
 */
export type EventAction = 'push' | 'pull' | 'mount' | 'delete' | 'fetch' | 'policy';

/** stowage's own: what the signature policy decided (policy events). */
export interface PolicyFacts { rule: number; mode: 'enforce' | 'warn'; outcome: 'denied' | 'warned'; where: string; reason: string }

export interface Descriptor { mediaType: string; digest: string; size: number }

export interface EventInput {
  action: EventAction;
  target: {
    /** What the event is about: decides target.url (manifests/ or blobs/). */
    kind: 'manifest' | 'blob' | 'tag';
    repository: string;
    digest?: string;
    size?: number;
    mediaType?: string;
    tag?: string;
    /** Mount: the repository the blob came from. */
    fromRepository?: string;
    /** What a manifest references (sent only with notifications.events.includereferences; a function is called only then). */
    references?: Descriptor[] | (() => Descriptor[]);
  };
  /** stowage's own: how a pull was answered (local, hit, miss, stale, joined, revalidated). */
  cache?: string;
  /** stowage's own: the upstream a pull went through or a fetch came from. */
  upstream?: string;
  policy?: PolicyFacts;
}

/**
 * Where the registry reports what happened. Given the write batch that records the content, the
 * event's outbox rows commit (or roll back) with the content's own rows; without one (pulls, which
 * change nothing), the sink writes them itself.
 */
export interface EventSink {
  record(event: EventInput, batch?: MetadataWriter): void;
}

/** No endpoints configured: nothing is recorded. */
export const NO_EVENTS: EventSink = { record() { /* nothing */ } };
