/**
 * A pull in progress holds its image against eviction (lifecycle/evict.ts, cache.pull_hold):
 * every manifest or blob request through the cache notes a use of its repository, and a blob
 * being streamed keeps noting it until the stream closes. Without the latter, a pull whose
 * layers take longer than the hold to stream (no new request meanwhile) could lose the layers
 * it has not asked for yet. Uses are cluster-wide (the metadata port flushes them), so the
 * replica running eviction sees a pull served by another.
 */
import type { Readable } from 'node:stream';
import type { BlobRange } from '../registry/blob-store.js';

/** Well under any sensible pull_hold; a use is one map entry, flushed in batches. */
const NOTE_EVERY_MS = 1_000;

export function holdWhileStreaming<A extends { open(range?: BlobRange): Promise<Readable> }>(answer: A, note: () => void): A {
  const open = answer.open.bind(answer);
  return {
    ...answer,
    open: async (range?: BlobRange) => {
      const stream = await open(range);
      const timer = setInterval(note, NOTE_EVERY_MS);
      timer.unref();
      stream.once('close', () => { clearInterval(timer); note(); });
      return stream;
    },
  };
}
