/**
 * Debian's Chromium driven by playwright-core (which never downloads a browser of its own), with
 * the flags this closed network needs (no background connections Chromium would make on its own),
 * and a watcher that collects console errors, page errors, failed requests and error responses.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--disable-gpu'],
  });
}

export interface Watch { problems: string[]; bytes: () => number }

/** Records everything that went wrong on a page (and the bytes its responses carried). */
export function watch(page: Page, allowStatus: (url: string, status: number) => boolean = () => false): Watch {
  const problems: string[] = [];
  let bytes = 0;
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('response', (r) => { if (r.status() >= 400 && !allowStatus(r.url(), r.status())) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  page.on('requestfinished', (r) => { void r.sizes().then((s) => { bytes += s.responseBodySize + s.responseHeadersSize; }, () => undefined); });
  return { problems, bytes: () => bytes };
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation { id: string; impact: string | null; help: string; nodes: number }

/** Runs axe-core on the page (evaluated through the DevTools protocol, so the page's CSP does not apply). */
export async function axe(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const w = globalThis as unknown as { document: unknown; axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: unknown[] }> }> } };
    const r = await w.axe.run(w.document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length }));
  });
}

/** The page's navigation timing: the server's time to first byte, then interactive DOM and load, from the navigation's start. */
export async function navigationTimes(page: Page): Promise<string> {
  const n = await page.evaluate(() => {
    const p = (globalThis as unknown as { performance: { getEntriesByType(t: string): Array<Record<string, number>> } }).performance;
    const e = p.getEntriesByType('navigation')[0]!;
    return {
      server: e.responseStart! - e.requestStart!, interactive: e.domInteractive! - e.startTime!,
      complete: e.domContentLoadedEventEnd! - e.startTime!, load: e.loadEventEnd! - e.startTime!,
    };
  });
  return `server ${n.server.toFixed(0)} ms to first byte; interactive ${n.interactive.toFixed(0)} ms, DOMContentLoaded ${n.complete.toFixed(0)} ms, load ${n.load.toFixed(0)} ms`;
}
