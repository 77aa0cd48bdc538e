/** The sign-in form: user and password (htpasswd), or a token (token auth). */
import { html, type Html } from '../html.js';

export function loginPage(scheme: 'basic' | 'token', failed: boolean, next: string): Html {
  return html`<h1>Sign in</h1>
${failed ? html`<p class="error" role="alert">Those credentials were not accepted.</p>` : ''}
<form class="login" method="post" action="/ui/login">
<input type="hidden" name="next" value="${next}">
${scheme === 'token'
    ? html`<label for="token">Token</label><textarea id="token" name="token" rows="4" required></textarea>
<p class="muted">A registry token from your token server; the page shows what it grants.</p>`
    : html`<label for="username">User name</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password">`}
<button type="submit">Sign in</button>
</form>`;
}
