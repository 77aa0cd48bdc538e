/**
 * Page-aligned, reusable read buffers for serving blobs. Two measured reasons (bench/registry.mjs,
 * perf on the 2-core AMD EPYC machines):
 * - Node's 1 MiB buffers start 16 bytes into a page, and the kernel's copy from the page cache
 *   (rep movsb) runs ~3.5x slower into such a destination than into a page-aligned one: it was
 *   over half of all CPU time on the blob path. WebAssembly.Memory is the one page-aligned
 *   allocation plain Node offers, so the pool is carved out of one.
 * - A fresh buffer per read made V8 run tens of full mark-compacts a second under load.
 *
 * Lending is strict: a chunk goes back to the pool only when the consumer that borrowed it says its
 * bytes are gone (the socket write completed), or when the chunk object itself has been garbage
 * collected, so no two readers ever share a slot. When every slot is out, `take` falls back to an
 * ordinary buffer.
 */
/** 1 MiB reads measured ~60% faster than 64 KiB on the blob path; 4 MiB gained nothing more. */
export const CHUNK_SIZE = 1024 * 1024;
const WASM_PAGE = 64 * 1024;
/** The one WebAssembly API used here (the project's type libraries do not declare it). */
type WasmGlobal = { WebAssembly: { Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer } } };

export class ChunkPool {
  private slab: ArrayBuffer | undefined;
  private slabUnavailable = false;
  private readonly freeSlots: number[] = [];
  private readonly lent = new WeakMap<Buffer, number>();
  private readonly reclaim = new FinalizationRegistry<number>((slot) => this.freeSlots.push(slot));

  constructor(private readonly slots: number) {}

  /** A chunk of CHUNK_SIZE bytes, pooled if a slot is free. */
  take(): Buffer {
    const slab = this.slab ?? (this.slabUnavailable ? undefined : this.createSlab());
    const slot = this.freeSlots.pop();
    if (slab === undefined || slot === undefined) return Buffer.allocUnsafeSlow(CHUNK_SIZE);
    return Buffer.from(slab, slot * CHUNK_SIZE, CHUNK_SIZE);
  }

  /**
   * Hands `view` (the chunk from `take`, or a view of its start) to a consumer that will `give` it
   * back. Until then its slot stays out of the pool, or until `view` is garbage collected.
   */
  lend(chunk: Buffer, view: Buffer): void {
    if (chunk.buffer !== this.slab || view.buffer !== this.slab) return;
    const slot = chunk.byteOffset / CHUNK_SIZE;
    this.lent.set(view, slot);
    this.reclaim.register(view, slot, view);
  }

  /** Returns a chunk that was never lent (a read failed or found nothing). */
  drop(chunk: Buffer): void {
    if (chunk.buffer === this.slab) this.freeSlots.push(chunk.byteOffset / CHUNK_SIZE);
  }

  /** Gives a lent view back; anything else (a second give, a foreign buffer) is ignored. */
  give(view: Buffer): void {
    const slot = this.lent.get(view);
    if (slot === undefined) return;
    this.lent.delete(view);
    this.reclaim.unregister(view);
    this.freeSlots.push(slot);
  }

  get idleSlots(): number {
    return this.freeSlots.length;
  }

  private createSlab(): ArrayBuffer | undefined {
    try {
      const memory = new (globalThis as unknown as WasmGlobal).WebAssembly.Memory({ initial: (this.slots * CHUNK_SIZE) / WASM_PAGE });
      this.slab = memory.buffer;
      for (let slot = this.slots - 1; slot >= 0; slot--) this.freeSlots.push(slot);
    } catch {
      this.slabUnavailable = true; // no WebAssembly here (e.g. --jitless): ordinary buffers only
    }
    return this.slab;
  }
}

/** Enough for 16 connections with a chunk in the socket, one read ahead and one being read. */
export const blobChunkPool = new ChunkPool(64);

/**
 * The opt-in between a stream that can hand out pooled chunks and the one consumer that knows
 * when their bytes are gone. A stream is marked with `offerPooledChunks`; a consumer that calls
 * `claimPooledChunks` before reading gets a release function it must call once per chunk when
 * done with it. Consumers that never claim (pipes, iterators, other layers) get ordinary buffers.
 */
const claimKey = Symbol('stowage.claimPooledChunks');
type Offering = { [claimKey]?: () => (view: Buffer) => void };

export function offerPooledChunks(stream: object, claim: () => (view: Buffer) => void): void {
  (stream as Offering)[claimKey] = claim;
}

export function claimPooledChunks(stream: object): ((view: Buffer) => void) | undefined {
  return (stream as Offering)[claimKey]?.();
}
