/** The page's two files, named by a hash of their content so browsers may keep them for a year. */
import { createHash } from 'node:crypto';
import { CLIENT } from './assets/client.js';
import { STYLE } from './assets/style.js';

export interface Asset { path: string; type: string; body: Buffer }

function asset(name: string, ext: string, type: string, text: string): Asset {
  const body = Buffer.from(text.trim() + '\n', 'utf8');
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 12);
  return { path: `/ui/assets/${name}.${hash}.${ext}`, type, body };
}

export const ASSETS = {
  css: asset('stowage', 'css', 'text/css; charset=utf-8', STYLE),
  js: asset('stowage', 'js', 'text/javascript; charset=utf-8', CLIENT),
};
