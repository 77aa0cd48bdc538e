/** The air-gap page: what an export of recently pulled images would carry. */
import { html, type Html } from '../html.js';
import type { AirGapView } from '../model/airgap.js';
import { formatBytes, formatCount, imageHref, isoTime } from './format.js';

export function airgapPage(v: AirGapView): Html {
  return html`<h1>Air gap</h1>
<form class="search" method="get" action="/ui/airgap">
<label for="since">Pulled since</label>
<input id="since" name="since" value="${v.since}" placeholder="7d, 36h, 2026-11-01">
<button type="submit">Show</button>
</form>
<p>An export of the images pulled since ${isoTime(v.sinceTime)}:</p>
<pre class="command"><code>stowage export --config FILE --since ${v.since} -o bundle.tar</code></pre>
<dl class="tiles">
<div><dt>Images</dt><dd>${formatCount(v.images.length)}</dd></div>
<div><dt>Bytes</dt><dd>${formatBytes(v.bytes)}</dd></div>
<div><dt>Blobs and manifests</dt><dd>${formatCount(v.blobs)}</dd></div>
<div><dt>Not stored here</dt><dd>${formatCount(v.missing)}</dd></div>
</dl>
${v.missing > 0 ? html`<p class="note">${formatCount(v.missing)} parts are not stored here (platforms or layers never pulled): the export fetches them through the cache, and fails for them if the upstream cannot be reached.</p>` : ''}
${v.images.length === 0 ? html`<p class="empty">No image was pulled in that time.</p>` : html`<table class="list"><thead><tr><th scope="col">Image</th><th scope="col" class="num">Bytes</th><th scope="col" class="num">Not here</th></tr></thead>
<tbody>${v.images.map((i) => html`<tr><td>${i.digest ? html`<a href="${imageHref(i.repo, i.digest)}">${i.name}</a>` : i.name}</td><td class="num">${formatBytes(i.bytes)}</td><td class="num">${i.missing > 0 ? formatCount(i.missing) : ''}</td></tr>`)}</tbody></table>`}
<p class="muted">Each blob is counted once, as the bundle stores it; referrers are included. Worked out ${isoTime(v.computedAt)}.</p>`;
}
