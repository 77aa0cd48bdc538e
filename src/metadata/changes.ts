/**
 * The in-process side of a ChangeFeed: listeners, the generation counter and the `live` flag.
 * SQLite publishes here after each commit; PostgreSQL publishes what its LISTEN connection hears.
 */
import type { Change, ChangeFeed } from './port.js';

export class LocalChangeFeed implements ChangeFeed {
  private readonly listeners = new Set<(change: Change) => void>();
  generation = 0;
  private liveFlag = true;

  get live(): boolean { return this.liveFlag; }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  publish(change: Change): void {
    this.generation++;
    for (const l of this.listeners) l(change);
  }

  /** Changes may have been missed (or may be from now on, while `live` is false): everything cached goes. */
  setLive(live: boolean): void {
    this.liveFlag = live;
    this.publish({ kind: 'all' });
  }
}

/** A stable key for a change, to drop duplicates within one batch. */
export function changeKey(c: Change): string {
  switch (c.kind) {
    case 'tag': return `t ${c.repo} ${c.tag}`;
    case 'revision': return `r ${c.repo} ${c.digest}`;
    case 'blob': return `b ${c.digest}`;
    case 'link': return `l ${c.repo} ${c.digest}`;
    case 'local': return `L ${c.repo}`;
    case 'tagcache': return `c ${c.upstream} ${c.repo}`;
    case 'outbox': return `o ${c.endpoint}`;
    case 'all': return '*';
  }
}
