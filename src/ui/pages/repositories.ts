/** The repository list: groups as tabs, a search box, a table, and a link to the next page. */
import { html, type Html } from '../html.js';
import type { RepositoryList } from '../model/repositories.js';
import { ago, formatBytes, formatCount, repoHref } from './format.js';

function listHref(group: string | undefined, search: string | undefined, after?: string): string {
  const q = new URLSearchParams();
  if (group) q.set('group', group);
  if (search) q.set('q', search);
  if (after) q.set('after', after);
  const s = q.toString();
  return s ? `/ui/?${s}` : '/ui/';
}

export function repositoriesPage(list: RepositoryList, signInHint: boolean): Html {
  const tabs = [
    html`<li><a href="${listHref(undefined, list.search)}"${list.group === undefined ? html` aria-current="true"` : ''}>All <span class="count">${formatCount(list.groups.reduce((n, g) => n + g.repositories, 0))}</span></a></li>`,
    ...list.groups.map((g) => html`<li><a href="${listHref(g.key, list.search)}"${list.group === g.key ? html` aria-current="true"` : ''}>${g.label} <span class="count">${formatCount(g.repositories)}</span> <span class="muted">${formatBytes(g.bytes)}</span></a></li>`),
  ];
  const rows = list.items.map((r) => html`<tr>
<td><a href="${repoHref(r.name)}">${r.name}</a></td>
<td>${r.local ? html`<span class="badge local">pushed</span>` : html`<span class="badge cached">cached</span>`}</td>
<td class="num">${formatCount(r.tags)}</td>
<td class="num">${formatBytes(r.bytes)}</td>
<td class="num">${formatCount(r.pulls)}</td>
<td>${ago(r.lastPulled)}</td>
</tr>`);
  return html`<h1>Repositories</h1>
<form class="search" role="search" method="get" action="/ui/">
${list.group ? html`<input type="hidden" name="group" value="${list.group}">` : ''}
<label for="q">Search repositories</label>
<input id="q" name="q" type="search" value="${list.search ?? ''}" placeholder="name contains…" autocomplete="off">
<button type="submit">Search</button>
</form>
<nav aria-label="Groups"><ul class="tabs">${tabs}</ul></nav>
<p class="summary">${formatCount(list.total)} ${list.total === 1 ? 'repository' : 'repositories'}${list.search ? html` matching “${list.search}”` : ''}</p>
${list.items.length === 0
    ? html`<p class="empty">Nothing to show here.${signInHint ? html` <a href="/ui/login">Sign in</a> to see the repositories you may pull.` : ''}</p>`
    : html`<table class="list">
<caption class="sr-only">Repositories</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Origin</th><th scope="col" class="num">Tags</th><th scope="col" class="num">Size</th><th scope="col" class="num">Pulls</th><th scope="col">Last pulled</th></tr></thead>
<tbody>${rows}</tbody>
</table>`}
${list.next ? html`<p class="pager"><a rel="next" href="${listHref(list.group, list.search, list.next)}">Next page →</a></p>` : ''}`;
}
