/** One manifest: an index's platforms, or an image's config and layers; its referrers; how to pull it. */
import { html, type Html } from '../html.js';
import type { ImageView } from '../model/image.js';
import { ago, digestCode, formatBytes, formatCount, imageHref, isoTime, repoHref } from './format.js';
import { pullBlock } from './pull.js';

function keyValues(caption: string, map: Record<string, string>): Html {
  const entries = Object.entries(map);
  if (entries.length === 0) return html``;
  return html`<table class="kv"><caption>${caption}</caption><tbody>${entries.map(([k, v]) => html`<tr><th scope="row">${k}</th><td>${v}</td></tr>`)}</tbody></table>`;
}

function configSection(v: ImageView): Html {
  const c = v.image;
  if (!v.config) return html``;
  if (!c) return html`<h2>Config</h2><p class="muted">The config blob (${digestCode(v.config.digest)}) is ${v.config.stored ? 'not readable' : 'not stored here yet'}.</p>`;
  const list = (xs: string[]) => (xs.length > 0 ? html`<code>${JSON.stringify(xs)}</code>` : html`<span class="muted">–</span>`);
  return html`<h2>Config</h2>
<dl class="facts">
<dt>Platform</dt><dd>${c.platform ?? '–'}</dd>
<dt>Created</dt><dd>${c.created ?? '–'}</dd>
${c.author ? html`<dt>Author</dt><dd>${c.author}</dd>` : ''}
<dt>Entrypoint</dt><dd>${list(c.entrypoint)}</dd>
<dt>Command</dt><dd>${list(c.cmd)}</dd>
${c.workingDir ? html`<dt>Working directory</dt><dd><code>${c.workingDir}</code></dd>` : ''}
${c.user ? html`<dt>User</dt><dd><code>${c.user}</code></dd>` : ''}
${c.exposedPorts.length > 0 ? html`<dt>Ports</dt><dd>${c.exposedPorts.join(', ')}</dd>` : ''}
</dl>
${c.env.length > 0 ? html`<h3>Environment</h3><ul class="env">${c.env.map((e) => html`<li><code>${e}</code></li>`)}</ul>` : ''}
${keyValues('Labels', c.labels)}
${c.history.length > 0 ? html`<h3>History</h3><ol class="history">${c.history.map((h) => html`<li>${h.created ? html`<span class="muted">${h.created}</span> ` : ''}<code>${h.createdBy ?? h.comment ?? ''}</code>${h.emptyLayer ? html` <span class="muted">(no layer)</span>` : ''}</li>`)}</ol>` : ''}`;
}

export function imagePage(v: ImageView): Html {
  const m = v.manifest;
  const platforms = v.platforms.length > 0 ? html`<h2>Platforms</h2>
<table class="list platforms"><thead><tr><th scope="col">Platform</th><th scope="col">Manifest</th><th scope="col" class="num">Size</th><th scope="col">Here</th></tr></thead>
<tbody>${v.platforms.map((p) => html`<tr><th scope="row">${p.platform ?? p.annotations['vnd.docker.reference.type'] ?? 'unknown'}</th>
<td><a href="${imageHref(v.repository, p.digest)}">${digestCode(p.digest)}</a></td><td class="num">${formatBytes(p.size)}</td>
<td>${p.stored ? 'stored' : html`<span class="muted">not pulled yet</span>`}</td></tr>`)}</tbody></table>` : '';
  const layers = v.layers.length > 0 ? html`<h2>Layers</h2>
<table class="list layers"><thead><tr><th scope="col">#</th><th scope="col">Digest</th><th scope="col">Media type</th><th scope="col" class="num">Size</th><th scope="col">Here</th></tr></thead>
<tbody>${v.layers.map((l, i) => html`<tr><td class="num">${i + 1}</td><td>${digestCode(l.digest)}</td><td>${l.mediaType}</td><td class="num">${formatBytes(l.size)}</td>
<td>${l.stored ? 'stored' : html`<span class="muted">not pulled yet</span>`}</td></tr>`)}</tbody>
<tfoot><tr><th scope="row" colspan="3">Config and layers</th><td class="num">${formatBytes(v.layerBytes)}</td><td></td></tr></tfoot></table>` : '';
  const referrers = v.referrers.length > 0 ? html`<h2>Referrers</h2>${v.referrers.map((g) => html`<h3>${g.artifactType}</h3>
<ul class="referrers">${g.items.map((r) => html`<li><a href="${imageHref(v.repository, r.digest)}">${digestCode(r.digest)}</a> ${formatBytes(r.size)}
${r.annotations ? keyValues('Annotations', r.annotations) : ''}</li>`)}</ul>`)}` : html`<h2>Referrers</h2><p class="muted">None: no signatures, SBOMs or attestations refer to this manifest here.</p>`;
  return html`<nav aria-label="Breadcrumb" class="crumbs"><a href="/ui/">Repositories</a> / <a href="${repoHref(v.repository)}">${v.repository}</a> / <span>${digestCode(m.digest)}</span></nav>
<h1>${v.repository}${v.tags.length > 0 ? `:${v.tags[0]}` : ''} <span class="kind">${v.kind}</span></h1>
<dl class="facts">
<dt>Digest</dt><dd><code class="digest-full">${m.digest}</code></dd>
<dt>Media type</dt><dd>${v.mediaType ?? '–'}</dd>
${v.artifactType ? html`<dt>Artifact type</dt><dd>${v.artifactType}</dd>` : ''}
<dt>Tags</dt><dd>${v.tags.length > 0 ? v.tags.join(', ') : html`<span class="muted">none</span>`}</dd>
<dt>Origin</dt><dd>${m.origin === 'local' ? 'pushed here' : `cached${m.upstream ? ` from ${m.upstream}` : ''}`}, ${ago(m.addedAt)}</dd>
<dt>Pulls</dt><dd>${formatCount(m.pulls)}, last ${ago(m.lastPulled)}</dd>
${v.subject ? html`<dt>Refers to</dt><dd><a href="${imageHref(v.repository, v.subject)}">${digestCode(v.subject)}</a></dd>` : ''}
</dl>
${keyValues('Annotations', v.annotations)}
<h2>Pull</h2>${pullBlock(v.pull, 'pull')}
${v.mayDelete ? html`<p><button type="button" class="danger" data-delete-repo="${v.repository}" data-delete-ref="${m.digest}">Delete this manifest</button></p>` : ''}
${platforms}${layers}${configSection(v)}${referrers}
<p class="muted">Shown ${isoTime(Date.now())}</p>`;
}
