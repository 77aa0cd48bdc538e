/**
 * A line chart of bytes per time bucket as plain SVG (no script, no library): bytes served from
 * the cache, fetched from upstreams, and served from pushed content. Colours come from the
 * stylesheet by class; the numbers are in a table beside it for screen readers.
 */
import type { TrafficPoint } from '../../metadata/browse.js';
import { html, type Html } from '../html.js';
import { formatBytes } from './format.js';

const W = 720;
const H = 200;
const PAD = { left: 64, right: 8, top: 10, bottom: 24 };

const SERIES = [
  { key: 'cacheBytes', label: 'served from the cache', cls: 'cache' },
  { key: 'fetchedBytes', label: 'fetched upstream', cls: 'fetched' },
  { key: 'localBytes', label: 'served from pushed content', cls: 'local' },
] as const;

export function trafficChart(points: readonly TrafficPoint[], title: string): Html {
  const max = Math.max(1, ...points.flatMap((p) => SERIES.map((s) => p[s.key])));
  const x = (i: number) => PAD.left + (points.length <= 1 ? 0 : (i * (W - PAD.left - PAD.right)) / (points.length - 1));
  const y = (v: number) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / max);
  const line = (key: (typeof SERIES)[number]['key']) => points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join('');
  const time = (t: number) => new Date(t).toISOString().slice(5, 16).replace('T', ' ');
  const first = points[0];
  const last = points[points.length - 1];
  return html`<figure class="chart">
<svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="chart-title">
<title id="chart-title">${title}</title>
<line class="axis" x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}"/>
<line class="axis" x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}"/>
<text class="tick" x="${PAD.left - 6}" y="${PAD.top + 8}" text-anchor="end">${formatBytes(max)}</text>
<text class="tick" x="${PAD.left - 6}" y="${H - PAD.bottom}" text-anchor="end">0</text>
${first ? html`<text class="tick" x="${PAD.left}" y="${H - 6}">${time(first.at)} UTC</text>` : ''}
${last ? html`<text class="tick" x="${W - PAD.right}" y="${H - 6}" text-anchor="end">${time(last.at)} UTC</text>` : ''}
${SERIES.map((s) => html`<path class="series ${s.cls}" d="${line(s.key)}"/>`)}
</svg>
<figcaption><ul class="legend">${SERIES.map((s) => html`<li><span class="swatch ${s.cls}"></span>${s.label}</li>`)}</ul></figcaption>
</figure>`;
}
