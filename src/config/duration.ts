/** Go duration strings ("300ms", "1.5h", "2h45m", "10s", "0"), as registry:2's config uses, in ms. */
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART_RE = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

/** Milliseconds, or undefined when the text is not a Go duration. */
export function parseGoDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  PART_RE.lastIndex = 0;
  let pos = 0;
  while (pos < s.length) {
    PART_RE.lastIndex = pos;
    const m = PART_RE.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = PART_RE.lastIndex;
  }
  return Math.round(total);
}
