/** One repository: what it is, its tags (digest, size, platforms, origin, pulls), how to pull. */
import { html, type Html } from '../html.js';
import type { RepositoryView } from '../model/repository.js';
import { ago, digestCode, formatBytes, formatCount, imageHref, repoHref } from './format.js';
import { pullBlock } from './pull.js';

export function repositoryPage(v: RepositoryView): Html {
  const r = v.repository;
  const origin = v.upstream
    ? html`cached from <strong>${v.upstream.name}</strong> (${v.upstream.remoteRepo})${r.local ? ' and pushed to' : ''}`
    : html`pushed here`;
  const rows = v.tags.map((t, i) => html`<tr>
<th scope="row"><a href="${imageHref(r.name, t.digest)}">${t.tag}</a></th>
<td><a href="${imageHref(r.name, t.digest)}">${digestCode(t.digest)}</a></td>
<td class="num">${formatBytes(t.bytes)}${t.missing > 0 ? html` <span class="muted" title="parts not cached yet">+${t.missing} not here</span>` : ''}</td>
<td>${t.platforms.length > 0 ? t.platforms.join(', ') : html`<span class="muted">–</span>`}</td>
<td>${t.origin === 'local' ? html`<span class="badge local">pushed</span>` : t.origin === 'cached' ? html`<span class="badge cached">cached</span>${t.upstream ? html` <span class="muted">from ${t.upstream}</span>` : ''}` : html`<span class="muted">–</span>`}</td>
<td>${ago(t.updatedAt)}</td>
<td>${ago(t.lastPulled)}</td>
<td class="num">${formatCount(t.pulls)}</td>
<td><details class="pull-details"><summary>Pull</summary>${pullBlock(t.pull, `pull-${i}`)}</details></td>
${v.mayDelete ? html`<td><button type="button" class="danger" data-delete-repo="${r.name}" data-delete-ref="${t.tag}">Delete tag</button></td>` : ''}
</tr>`);
  return html`<nav aria-label="Breadcrumb" class="crumbs"><a href="/ui/">Repositories</a> / <span>${r.name}</span></nav>
<h1>${r.name}</h1>
<p class="summary">${origin} · ${formatCount(r.tags)} tags · ${formatCount(r.manifests)} manifests · ${formatBytes(r.bytes)} stored · ${formatCount(r.pulls)} pulls, last ${ago(r.lastPulled)}</p>
${v.tags.length > 0 ? html`<h2>Pull the first tag</h2>${pullBlock(v.tags[0]!.pull, 'pull-top')}` : ''}
<h2>Tags</h2>
${v.tags.length === 0 ? html`<p class="empty">No tags (its manifests are reachable by digest only).</p>` : html`<table class="list tags">
<thead><tr><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col">Platforms</th><th scope="col">Origin</th><th scope="col">Updated</th><th scope="col">Last pulled</th><th scope="col" class="num">Pulls</th><th scope="col">Pull commands</th>${v.mayDelete ? html`<th scope="col">Delete</th>` : ''}</tr></thead>
<tbody>${rows}</tbody>
</table>`}
${v.next ? html`<p class="pager"><a rel="next" href="${repoHref(r.name)}?after=${encodeURIComponent(v.next)}">Next tags →</a></p>` : ''}`;
}
