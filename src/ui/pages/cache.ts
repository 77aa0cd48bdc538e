/** The cache page: what it saved, its upstreams, its disk, its biggest and busiest images, notifications. */
import { html, type Html } from '../html.js';
import type { CacheView } from '../model/cache.js';
import type { ImageSize } from '../model/images.js';
import { trafficChart } from './chart.js';
import { ago, formatBytes, formatCount, imageHref, percent } from './format.js';

function imageList(caption: string, images: readonly ImageSize[]): Html {
  if (images.length === 0) return html`<p class="muted">None.</p>`;
  return html`<table class="list"><caption class="sr-only">${caption}</caption>
<thead><tr><th scope="col">Image</th><th scope="col" class="num">Size</th></tr></thead>
<tbody>${images.map((i) => html`<tr><td><a href="${imageHref(i.repo, i.digest)}">${i.repo}:${i.tags.join(', ')}</a></td><td class="num">${formatBytes(i.bytes)}</td></tr>`)}</tbody></table>`;
}

export function cachePage(v: CacheView): Html {
  const t = v.totals;
  const d = v.disk;
  const budget = d.maxBytes > 0
    ? html`<meter min="0" max="${d.maxBytes}" value="${Math.min(d.cachedBytes, d.maxBytes)}" high="${d.maxBytes * d.lowWatermark}" aria-label="cache use against cache.max_size"></meter> ${formatBytes(d.cachedBytes)} of ${formatBytes(d.maxBytes)} (${percent(d.cachedBytes / d.maxBytes)}); eviction goes down to ${percent(d.lowWatermark)}`
    : html`${formatBytes(d.cachedBytes)} cached, no budget set (cache.max_size)`;
  return html`<h1>Cache</h1>
<section aria-labelledby="saved"><h2 id="saved">Last ${v.hours} hours</h2>
<dl class="tiles">
<div><dt>Hit ratio</dt><dd>${percent(t.hitRatio)}</dd></div>
<div><dt>Requests</dt><dd>${formatCount(t.requests)}</dd></div>
<div><dt>Served from the cache</dt><dd>${formatBytes(t.cacheBytes)}</dd></div>
<div><dt>Fetched upstream</dt><dd>${formatBytes(t.fetchedBytes)}</dd></div>
<div><dt>Served from pushed content</dt><dd>${formatBytes(t.localBytes)}</dd></div>
</dl>
${trafficChart(v.series, `Bytes per ${v.bucketMs / 60_000} minutes over the last ${v.hours} hours`)}
<p><a href="/ui/cache?hours=24">24 h</a> · <a href="/ui/cache?hours=168">7 days</a></p>
</section>
<section aria-labelledby="upstreams"><h2 id="upstreams">Upstreams</h2>
${v.upstreams.length === 0 ? html`<p class="muted">No upstream is configured: this registry serves pushed content only.</p>` : html`<table class="list">
<thead><tr><th scope="col">Upstream</th><th scope="col">Circuit</th><th scope="col" class="num">Latency</th><th scope="col">Last answer</th><th scope="col">Last error</th></tr></thead>
<tbody>${v.upstreams.map((u) => html`<tr><th scope="row">${u.name}${u.isDefault ? html` <span class="badge">default</span>` : ''}<div class="muted">${u.url}</div></th>
<td><span class="state ${u.state}">${u.state}</span></td>
<td class="num">${u.averageLatencyMs !== undefined ? `${u.averageLatencyMs} ms` : '–'}</td>
<td>${ago(u.lastSuccessAt)}</td>
<td>${u.lastError ? html`${u.lastError.message} <span class="muted">(${ago(u.lastError.at)})</span>` : html`<span class="muted">none</span>`}</td></tr>`)}</tbody></table>`}
</section>
<section aria-labelledby="disk"><h2 id="disk">Disk</h2>
<p>${budget}</p>
<p>${formatBytes(d.pushedBytes)} of pushed content (never evicted).${d.filesystem ? html` The file system at <code>${d.filesystem.path}</code> has ${formatBytes(d.filesystem.freeBytes)} free of ${formatBytes(d.filesystem.totalBytes)}.` : ''}</p>
<p>Evicted since this process started: ${formatCount(d.evictions)} images, ${formatBytes(d.evictedBytes)}.</p>
</section>
<section aria-labelledby="pins"><h2 id="pins">Pinned</h2>
${v.pins.patterns.length > 0 ? html`<p>Patterns: ${v.pins.patterns.map((p, i) => html`${i > 0 ? ', ' : ''}<code>${p}</code>`)}</p>` : html`<p class="muted">No pins (cache.pin, stowage prefetch --pin).</p>`}
${v.pins.patterns.length > 0 ? imageList('Pinned images', v.pins.images) : ''}
</section>
<section aria-labelledby="largest"><h2 id="largest">Largest images</h2>${imageList('Largest images', v.largest)}</section>
<section aria-labelledby="pulled"><h2 id="pulled">Most pulled</h2>
${v.mostPulled.length === 0 ? html`<p class="muted">No pulls counted yet.</p>` : html`<table class="list"><thead><tr><th scope="col">Image</th><th scope="col" class="num">Pulls</th><th scope="col">Last pulled</th></tr></thead>
<tbody>${v.mostPulled.map((p) => html`<tr><td><a href="${imageHref(p.repo, p.digest)}">${p.repo}${p.tags.length > 0 ? `:${p.tags.join(', ')}` : `@${p.digest.slice(0, 19)}`}</a></td><td class="num">${formatCount(p.pulls)}</td><td>${ago(p.lastPulled)}</td></tr>`)}</tbody></table>`}
</section>
<section aria-labelledby="notify"><h2 id="notify">Notification endpoints</h2>
${v.notifications.length === 0 ? html`<p class="muted">None configured.</p>` : html`<table class="list"><thead><tr><th scope="col">Endpoint</th><th scope="col" class="num">Pending</th><th scope="col" class="num">Failed deliveries</th><th scope="col" class="num">Delivered</th><th scope="col" class="num">Dropped</th><th scope="col">State</th></tr></thead>
<tbody>${v.notifications.map((n) => html`<tr><th scope="row">${n.name}<div class="muted">${n.url}</div></th><td class="num">${formatCount(n.pending)}</td><td class="num">${formatCount(n.failed)}</td><td class="num">${formatCount(n.delivered)}</td><td class="num">${formatCount(n.dropped)}</td>
<td>${n.disabled ? 'disabled' : n.failingNow ? html`<span class="state open">failing</span>` : html`<span class="state closed">delivering</span>`}</td></tr>`)}</tbody></table>`}
</section>`;
}
