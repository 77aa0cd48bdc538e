/** The pull commands block with copy buttons (the page's script copies; the text is selectable without it). */
import { html, type Html } from '../html.js';
import type { PullCommand } from '../pull-commands.js';

export function pullBlock(commands: readonly PullCommand[], id: string): Html {
  return html`<ul class="pull">${commands.map((c, i) => html`<li>
<span class="client">${c.client}</span>
<code id="${id}-${i}" class="command" data-client="${c.client}">${c.command}</code>
<button type="button" class="copy" data-copy-from="${id}-${i}" aria-label="Copy the ${c.client} command">Copy</button>
${c.note ? html`<div class="note">${c.note}</div>` : ''}
</li>`)}</ul>`;
}
