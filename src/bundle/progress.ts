/**
 * Progress of a long command, as events: the command line turns them into bars on a terminal, a
 * line every few seconds otherwise, or nothing (--json). A task is one image (prefetch, export)
 * or the bundle being read (import); its total may grow as manifests reveal what it holds.
 */
import { Readable } from 'node:stream';

export type TaskOutcome = 'done' | 'skipped' | 'failed';

export interface Progress {
  begin(task: string, totalBytes?: number): void;
  grow(task: string, bytes: number): void;
  advance(task: string, bytes: number): void;
  end(task: string, outcome: TaskOutcome, detail?: string): void;
}

export const NO_PROGRESS: Progress = { begin() {}, grow() {}, advance() {}, end() {} };

/** The same bytes, with each chunk's length reported as it passes. */
export function counted(source: AsyncIterable<Buffer>, onBytes: (n: number) => void): Readable {
  return Readable.from((async function* () {
    for await (const chunk of source) {
      onBytes(chunk.length);
      yield chunk;
    }
  })(), { objectMode: false });
}
