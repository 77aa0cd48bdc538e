/** The frame every page shares: header with navigation and who is signed in, then the page. */
import { html, type Html } from '../html.js';
import type { Viewer } from '../access.js';

export interface Frame {
  title: string;
  active: 'repositories' | 'cache' | 'airgap' | 'login' | 'none';
  viewer: Viewer | undefined;
  /** Sign-in is possible (auth is configured). */
  canSignIn: boolean;
  assets: { css: string; js: string };
}

export function layout(f: Frame, body: Html): Html {
  const nav = (key: Frame['active'], href: string, label: string) =>
    html`<a href="${href}"${key === f.active ? html` aria-current="page"` : ''}>${label}</a>`;
  const user = f.viewer?.principal.user;
  const who = user !== undefined
    ? html`<span class="who">Signed in as <strong>${user}</strong></span>${f.viewer?.viaSession
      ? html`<form method="post" action="/ui/logout" class="inline"><button type="submit" class="link">Sign out</button></form>` : ''}`
    : f.canSignIn ? html`<a href="/ui/login">Sign in</a>` : '';
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${f.title} · stowage</title>
<link rel="stylesheet" href="${f.assets.css}">
<link rel="icon" href="data:,">
<script type="module" src="${f.assets.js}"></script>
</head>
<body>
<header class="top">
<a class="brand" href="/ui/">stowage</a>
<nav aria-label="Main">${nav('repositories', '/ui/', 'Repositories')}${nav('cache', '/ui/cache', 'Cache')}${nav('airgap', '/ui/airgap', 'Air gap')}</nav>
<div class="account">${who}</div>
</header>
<main id="main">
${body}
</main>
</body>
</html>`;
}

/** A page that only says something (not found, nothing visible). */
export function message(title: string, text: Html | string): Html {
  return html`<h1>${title}</h1><p>${text}</p>`;
}
