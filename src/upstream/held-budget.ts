/**
 * Bytes a process holds in memory for ranged fetches (ranged-body.ts): the later chunks of big
 * blobs that arrived before their turn. One budget per process (ranges.max_memory), shared by
 * every fill: a chunk's response that would take it over the limit is paused, and resumed when
 * the chunks ahead of it have streamed and given their bytes back.
 */
export class HeldBudget {
  private used = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get held(): number { return this.used; }

  get full(): boolean { return this.used >= this.limit; }

  take(bytes: number): void {
    this.used += bytes;
  }

  give(bytes: number): void {
    this.used -= bytes;
    if (this.used >= this.limit || this.waiting.size === 0) return;
    const wake = [...this.waiting];
    this.waiting.clear();
    for (const w of wake) w();
  }

  /** Calls `resume` once when bytes are given back below the limit (unless `cancel`led first). */
  whenRoom(resume: () => void): () => void {
    this.waiting.add(resume);
    return () => { this.waiting.delete(resume); };
  }
}
