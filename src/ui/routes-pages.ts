/** The HTML pages under /ui/ (and / redirecting there). */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../errors.js';
import type { Viewer } from './access.js';
import { ASSETS } from './assets.js';
import type { Html } from './html.js';
import { cacheView } from './model/cache.js';
import { imageView } from './model/image.js';
import { listRepositories } from './model/repositories.js';
import { repositoryView } from './model/repository.js';
import { airgapPage } from './pages/airgap.js';
import { cachePage } from './pages/cache.js';
import { imagePage } from './pages/image.js';
import { layout, message, type Frame } from './pages/layout.js';
import { loginPage } from './pages/login.js';
import { repositoriesPage } from './pages/repositories.js';
import { repositoryPage } from './pages/repository.js';
import type { UiRuntime } from './plugin.js';
import { limitParam, parseRepoPath, query, readFields, sameOrigin, sinceMs } from './request.js';

const ASSET_BY_PATH = new Map(Object.values(ASSETS).map((a) => [a.path, a]));

export function registerPages(app: FastifyInstance, ui: UiRuntime): void {
  const canSignIn = ui.deps.authenticator !== undefined;
  const send = (reply: FastifyReply, viewer: Viewer | undefined, title: string, active: Frame['active'], body: Html, status = 200) =>
    reply.code(status).header('Cache-Control', 'no-store').type('text/html; charset=utf-8')
      .send(layout({ title, active, viewer, canSignIn, assets: { css: ASSETS.css.path, js: ASSETS.js.path } }, body).text);
  /** A viewer who signed in sees nothing more by signing in again; an anonymous one is told where to sign in. */
  const signInHint = (v: Viewer) => canSignIn && !v.principal.credentials;
  const notFound = (reply: FastifyReply, v: Viewer, what: string) =>
    send(reply, v, 'Not found', 'none', message('Not found', `${what} does not exist here${signInHint(v) ? ', or you need to sign in to see it' : ''}.`), 404);

  app.get('/', async (_req, reply) => reply.redirect('/ui/', 302));
  app.get('/ui', async (_req, reply) => reply.redirect('/ui/', 302));

  app.get('/ui/assets/*', async (req, reply) => {
    const asset = ASSET_BY_PATH.get(req.url.split('?', 1)[0]!);
    if (!asset) throw new RegistryError('NAME_UNKNOWN', 'no such file', { status: 404 });
    return reply.header('Cache-Control', 'public, max-age=31536000, immutable').type(asset.type).send(asset.body);
  });

  app.get('/ui/', async (req, reply) => {
    const viewer = await ui.viewer(req);
    const group = query(req, 'group');
    const search = query(req, 'q', 128)?.toLowerCase();
    const after = query(req, 'after');
    const list = await listRepositories(ui.ctx, viewer, {
      limit: limitParam(req, 50, 200), ...(group ? { group } : {}), ...(search ? { search } : {}), ...(after ? { after } : {}),
    });
    return send(reply, viewer, 'Repositories', 'repositories', repositoriesPage(list, signInHint(viewer)));
  });

  app.get('/ui/r/*', async (req, reply) => {
    const viewer = await ui.viewer(req);
    const path = parseRepoPath((req.params as { '*': string })['*'], false);
    if (!path) return notFound(reply, viewer, 'That repository');
    if (path.kind === 'repository') {
      const after = query(req, 'after');
      const view = await repositoryView(ui.ctx, viewer, path.name, ui.endpoint(req), { limit: limitParam(req, 100, 500), ...(after ? { after } : {}) });
      return view ? send(reply, viewer, path.name, 'repositories', repositoryPage(view)) : notFound(reply, viewer, 'That repository');
    }
    if (path.reference.kind === 'tag') {
      // /ui/r/<name>/-/<tag>: the page of the manifest the tag points at.
      const digest = viewer.mayPull(path.name) ? await ui.deps.registry.manifests.resolve(path.name, path.reference) : undefined;
      return digest ? reply.redirect(`/ui/r/${path.name}/-/${digest}`, 302) : notFound(reply, viewer, 'That tag');
    }
    const view = await imageView(ui.ctx, viewer, path.name, path.reference.digest, ui.endpoint(req));
    return view ? send(reply, viewer, `${path.name}@${path.reference.digest.slice(0, 19)}`, 'repositories', imagePage(view)) : notFound(reply, viewer, 'That manifest');
  });

  app.get('/ui/cache', async (req, reply) => {
    const viewer = await ui.viewer(req);
    const hours = query(req, 'hours') === '168' ? 168 : 24;
    return send(reply, viewer, 'Cache', 'cache', cachePage(await cacheView(ui.ctx, viewer, ui.sizes, hours)));
  });

  app.get('/ui/airgap', async (req, reply) => {
    const viewer = await ui.viewer(req);
    const since = query(req, 'since', 40) ?? '7d';
    const ms = sinceMs(since);
    if (ms === undefined) return send(reply, viewer, 'Air gap', 'airgap', message('Air gap', `“${since}” is neither a duration (7d, 36h, 2w) nor a past date.`), 400);
    return send(reply, viewer, 'Air gap', 'airgap', airgapPage(await ui.airgap.view(viewer, since, ms)));
  });

  const nextOf = (value: string | undefined) => (value && value.startsWith('/ui/') && !value.startsWith('/ui//') ? value : '/ui/');
  app.get('/ui/login', async (req, reply) => {
    const viewer = await ui.viewer(req);
    if (!ui.access.scheme) return send(reply, viewer, 'Sign in', 'login', message('Sign in', 'This registry has no authentication configured: everyone sees everything.'));
    return send(reply, viewer, 'Sign in', 'login', loginPage(ui.access.scheme, false, nextOf(query(req, 'next'))));
  });
  app.post('/ui/login', async (req: FastifyRequest, reply) => {
    const fields = await readFields(req);
    const scheme = ui.access.scheme;
    if (!scheme) return reply.redirect('/ui/', 303);
    const ok = await ui.access.signIn(fields);
    if (!ok) {
      req.log.warn({ user: fields.username?.slice(0, 100), address: req.ip }, 'sign-in on the page failed');
      return send(reply, undefined, 'Sign in', 'login', loginPage(scheme, true, nextOf(fields.next)));
    }
    await ui.setSession(req, reply, ok.authorization);
    return reply.redirect(nextOf(fields.next), 303);
  });
  app.post('/ui/logout', async (req, reply) => {
    if (!sameOrigin(req)) throw new RegistryError('DENIED', 'sign-out must come from this site', { status: 403 });
    await ui.setSession(req, reply, undefined);
    return reply.redirect('/ui/', 303);
  });
}
