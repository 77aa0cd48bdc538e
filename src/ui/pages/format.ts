/** Small formatting helpers for the pages (numbers, bytes, times, digests, links). */
import { html, type Html } from '../html.js';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export const formatCount = (n: number): string => n.toLocaleString('en-US');

export function isoTime(t: number): string {
  return new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** "3 min ago" with the exact time as the element's datetime; "never" for 0. */
export function ago(t: number | undefined, now = Date.now()): Html {
  if (!t) return html`<span class="muted">never</span>`;
  const s = Math.max(0, Math.round((now - t) / 1000));
  const text = s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : s < 172_800 ? `${Math.round(s / 3600)} h ago` : `${Math.round(s / 86_400)} days ago`;
  return html`<time datetime="${isoTime(t)}" title="${isoTime(t)}">${text}</time>`;
}

export const shortDigest = (d: string): string => (d.includes(':') ? `${d.slice(0, d.indexOf(':') + 13)}` : d.slice(0, 12));

/** Repository names are [a-z0-9._/-] (oci/reference.ts), so they are safe path segments as they are. */
export const repoHref = (repo: string): string => `/ui/r/${repo}`;
export const imageHref = (repo: string, digest: string): string => `/ui/r/${repo}/-/${digest}`;

export function digestCode(d: string): Html {
  return html`<code class="digest" title="${d}">${shortDigest(d)}</code>`;
}

export function percent(x: number | undefined): string {
  return x === undefined ? '–' : `${(x * 100).toFixed(1)} %`;
}
