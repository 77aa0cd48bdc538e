/**
 * The JSON API under /_stowage/api/: the models the pages render, for scripts and the page's
 * script. Credentials as on /v2 (an Authorization header) or the page's sign-in cookie; errors
 * in the registry's JSON error format.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { repositoryScope } from '../auth/scope.js';
import { RegistryError } from '../errors.js';
import { originOf } from '../http/plugins/auth.js';
import type { Viewer } from './access.js';
import { cacheView } from './model/cache.js';
import { imageView } from './model/image.js';
import { listRepositories } from './model/repositories.js';
import { repositoryView } from './model/repository.js';
import type { UiRuntime } from './plugin.js';
import { limitParam, parseRepoPath, query, readFields, sameOrigin, sinceMs } from './request.js';

export const API = '/_stowage/api';


const json = (reply: FastifyReply, body: unknown, status = 200) =>
  reply.code(status).header('Cache-Control', 'no-store').type('application/json').send(JSON.stringify(body));

export function registerApi(app: FastifyInstance, ui: UiRuntime): void {
  /**
   * Refuses an anonymous viewer with 401 and the registry's own challenge for `name` (credentials
   * could help); anyone else with `what` (a 404 that does not say whether the name exists, or 403).
   */
  const refuse = (req: FastifyRequest, viewer: Viewer, name: string, what: RegistryError): RegistryError => {
    const authenticator = ui.deps.authenticator;
    if (authenticator && !viewer.principal.credentials) {
      const challenge = authenticator.challenge({ scopes: [repositoryScope(name, 'pull')], origin: originOf(req) });
      return new RegistryError('UNAUTHORIZED', 'authentication required', { headers: { 'WWW-Authenticate': challenge } });
    }
    return what;
  };

  app.get(`${API}/whoami`, async (req, reply) => {
    const viewer = await ui.viewer(req);
    return json(reply, {
      user: viewer.principal.user ?? null, signedIn: viewer.principal.credentials, auth: ui.access.scheme ?? 'none',
      deleteEnabled: ui.deps.config.storage.delete.enabled,
    });
  });

  app.get(`${API}/repositories`, async (req, reply) => {
    const viewer = await ui.viewer(req);
    const group = query(req, 'group');
    const search = query(req, 'q', 128)?.toLowerCase();
    const after = query(req, 'after');
    return json(reply, await listRepositories(ui.ctx, viewer, {
      limit: limitParam(req, 50, 1000), ...(group ? { group } : {}), ...(search ? { search } : {}), ...(after ? { after } : {}),
    }));
  });

  const repoPath = (req: FastifyRequest) => {
    const path = parseRepoPath((req.params as { '*': string })['*'], true);
    if (!path) throw new RegistryError('NAME_INVALID', 'expected /_stowage/api/repositories/<name>[/-/manifests/<tag or digest>]', { status: 404 });
    return path;
  };

  app.get(`${API}/repositories/*`, async (req, reply) => {
    const viewer = await ui.viewer(req);
    const path = repoPath(req);
    if (path.kind === 'repository') {
      const after = query(req, 'after');
      const view = await repositoryView(ui.ctx, viewer, path.name, ui.endpoint(req), { limit: limitParam(req, 100, 1000), ...(after ? { after } : {}) });
      if (!view) throw refuse(req, viewer, path.name, new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { detail: { name: path.name } }));
      return json(reply, view);
    }
    const digest = viewer.mayPull(path.name) ? await ui.deps.registry.manifests.resolve(path.name, path.reference) : undefined;
    const view = digest ? await imageView(ui.ctx, viewer, path.name, digest, ui.endpoint(req)) : undefined;
    if (!view) throw refuse(req, viewer, path.name, new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { name: path.name } }));
    return json(reply, view);
  });

  app.delete(`${API}/repositories/*`, async (req, reply) => {
    const viewer = await ui.viewer(req);
    const path = repoPath(req);
    if (path.kind !== 'manifest') throw new RegistryError('UNSUPPORTED', 'delete a tag or a manifest: /-/manifests/<tag or digest>');
    if (viewer.viaSession && !sameOrigin(req)) throw new RegistryError('DENIED', 'a delete with the page\'s cookie must come from the page', { status: 403 });
    if (!ui.deps.config.storage.delete.enabled) throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry (storage.delete.enabled)');
    if (!viewer.mayDelete(path.name)) throw refuse(req, viewer, path.name, new RegistryError('DENIED', 'requested access to the resource is denied'));
    await ui.deps.registry.manifests.delete(path.name, path.reference);
    req.log.info({ repo: path.name, reference: path.reference.kind === 'tag' ? path.reference.tag : path.reference.digest, user: viewer.principal.user }, 'deleted from the page');
    return reply.code(202).header('Content-Length', 0).send();
  });

  app.get(`${API}/cache`, async (req, reply) => {
    const viewer = await ui.viewer(req);
    const hours = Number(query(req, 'hours') ?? 24);
    if (!Number.isInteger(hours) || hours < 1 || hours > 192) throw new RegistryError('PAGINATION_NUMBER_INVALID', 'hours: 1 to 192');
    return json(reply, await cacheView(ui.ctx, viewer, ui.sizes, hours));
  });

  app.get(`${API}/airgap`, async (req, reply) => {
    const viewer = await ui.viewer(req);
    const since = query(req, 'since', 40) ?? '7d';
    const ms = sinceMs(since);
    if (ms === undefined) throw new RegistryError('UNSUPPORTED', 'since: a duration (7d, 36h, 2w) or a past date', { status: 400 });
    return json(reply, await ui.airgap.view(viewer, since, ms));
  });

  app.post(`${API}/session`, async (req, reply) => {
    const ok = await ui.access.signIn(await readFields(req));
    if (!ok) throw new RegistryError('UNAUTHORIZED', 'those credentials were not accepted');
    await ui.setSession(req, reply, ok.authorization);
    return json(reply, { user: ok.user ?? null });
  });
  app.delete(`${API}/session`, async (req, reply) => {
    await ui.setSession(req, reply, undefined);
    return reply.code(204).send();
  });
}
