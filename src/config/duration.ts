/**
 * Go duration strings ("300ms", "1.5h", "2h45m", "10s", "0"), as registry:2's config uses, in ms.
 * Only non-negative durations: a config value below zero has no meaning in stowage.
 */
const UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART_RE = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

export class DurationError extends Error {
  constructor(text: string) {
    super(`not a duration: ${JSON.stringify(text)}`);
    this.name = 'DurationError';
  }
}

/** Milliseconds (rounded to whole ms). Throws DurationError when the text is not a Go duration. */
export function parseGoDuration(text: string): number {
  const s = text.trim();
  if (s === '0' || s === '+0') return 0;
  const body = s.startsWith('+') ? s.slice(1) : s;
  if (body === '') throw new DurationError(text);
  let total = 0;
  let pos = 0;
  while (pos < body.length) {
    PART_RE.lastIndex = pos;
    const m = PART_RE.exec(body);
    if (!m) throw new DurationError(text);
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = PART_RE.lastIndex;
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) throw new DurationError(text);
  return Math.round(total);
}

/** The shortest Go duration text for a whole number of ms ("168h", "1m30s", "500ms", "0s"). */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}
