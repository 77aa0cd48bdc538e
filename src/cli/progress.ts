/**
 * How a long command shows its progress: bars per task (cli-progress) with bytes, throughput and
 * ETA when stderr is a terminal; otherwise one line every few seconds (CI logs stay short);
 * nothing with --json. The summary table goes to stdout at the end (or the JSON report).
 */
import cliProgress from 'cli-progress';
import type { Progress, TaskOutcome } from '../bundle/progress.js';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export const formatRate = (bytes: number, ms: number): string => `${formatBytes(ms > 0 ? (bytes * 1000) / ms : 0)}/s`;
export const formatSeconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export interface Reporter extends Progress { close(): void }

interface Task { total: number; done: number; started: number; outcome?: TaskOutcome }

/** Picks the reporter: bars on a terminal, lines otherwise, silence for --json. */
export function createReporter(verb: string, options: { json: boolean; stream?: NodeJS.WriteStream; intervalMs?: number }): Reporter {
  const stream = options.stream ?? process.stderr;
  if (options.json) return { begin() {}, grow() {}, advance() {}, end() {}, close() {} };
  if (stream.isTTY) return new BarReporter(verb, stream);
  const env = Number(process.env.STOWAGE_PROGRESS_INTERVAL_MS);
  return new LineReporter(verb, stream, options.intervalMs ?? (Number.isFinite(env) && env > 0 ? env : 5000));
}

class BarReporter implements Reporter {
  private readonly bars: cliProgress.MultiBar;
  private readonly tasks = new Map<string, { bar: cliProgress.SingleBar; task: Task }>();

  constructor(private readonly verb: string, stream: NodeJS.WriteStream) {
    this.bars = new cliProgress.MultiBar({
    stream,
    format: ' {bar} {percentage}% | {task} | {bytes} | {rate} | ETA {eta_formatted}',
    barsize: 24,
    hideCursor: true,
    clearOnComplete: false,
    stopOnComplete: false,
    etaBuffer: 50,
    fps: 5,
    forceRedraw: true,
  }, cliProgress.Presets.shades_classic);
  }

  private payload(name: string, t: Task) {
    const status = t.outcome === 'failed' ? ' FAILED' : t.outcome === 'skipped' ? ' (cached)' : '';
    return { task: `${this.verb} ${name}${status}`, bytes: `${formatBytes(t.done)} / ${formatBytes(t.total)}`, rate: formatRate(t.done, Date.now() - t.started) };
  }

  begin(name: string, totalBytes = 0): void {
    const task: Task = { total: totalBytes, done: 0, started: Date.now() };
    this.tasks.set(name, { task, bar: this.bars.create(Math.max(totalBytes, 1), 0, this.payload(name, task)) });
  }
  grow(name: string, bytes: number): void {
    const t = this.tasks.get(name);
    if (!t) return;
    t.task.total += bytes;
    t.bar.setTotal(Math.max(t.task.total, 1));
  }
  advance(name: string, bytes: number): void {
    const t = this.tasks.get(name);
    if (!t) return;
    t.task.done += bytes;
    t.bar.update(Math.min(t.task.done, Math.max(t.task.total, 1)), this.payload(name, t.task));
  }
  end(name: string, outcome: TaskOutcome, detail?: string): void {
    let t = this.tasks.get(name);
    if (!t) { this.begin(name, 0); t = this.tasks.get(name)!; }
    t.task.outcome = outcome;
    t.bar.update(outcome === 'failed' ? t.task.done : Math.max(t.task.total, 1), this.payload(name, t.task));
    if (outcome === 'failed' && detail) this.bars.log(`${this.verb} ${name}: ${detail}\n`);
  }
  private closed = false;
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.bars.stop();
  }
}

class LineReporter implements Reporter {
  private readonly tasks = new Map<string, Task>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private readonly started = Date.now();

  constructor(private readonly verb: string, private readonly stream: NodeJS.WriteStream, intervalMs: number) {
    this.timer = setInterval(() => this.line(), intervalMs);
    this.timer.unref();
  }

  private line(): void {
    let total = 0;
    let done = 0;
    let finished = 0;
    for (const t of this.tasks.values()) {
      total += t.total;
      done += t.done;
      if (t.outcome) finished++;
    }
    const ms = Date.now() - this.started;
    const pct = total > 0 ? ` (${Math.floor((done * 100) / total)}%)` : '';
    this.stream.write(`${this.verb}: ${finished}/${this.tasks.size} done, ${formatBytes(done)} of ${formatBytes(total)}${pct}, ${formatRate(done, ms)}, ${formatSeconds(ms)}\n`);
  }

  begin(name: string, totalBytes = 0): void { this.tasks.set(name, { total: totalBytes, done: 0, started: Date.now() }); }
  grow(name: string, bytes: number): void { const t = this.tasks.get(name); if (t) t.total += bytes; }
  advance(name: string, bytes: number): void { const t = this.tasks.get(name); if (t) t.done += bytes; }
  end(name: string, outcome: TaskOutcome, detail?: string): void {
    const t = this.tasks.get(name) ?? { total: 0, done: 0, started: Date.now() };
    t.outcome = outcome;
    this.tasks.set(name, t);
    if (outcome === 'failed') this.stream.write(`${this.verb} ${name}: FAILED${detail ? `: ${detail}` : ''}\n`);
  }
  close(): void {
    clearInterval(this.timer);
    if (this.closed) return;
    this.closed = true;
    if (this.tasks.size > 0) this.line();
  }
}

/** A plain-text table: columns padded to their widest cell. */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
