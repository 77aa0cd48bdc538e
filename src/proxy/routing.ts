/**
 * Which upstream a request goes to, and under which repository its content is cached.
 *   /v2/ghcr.io/org/app/...        path prefix            -> ghcr.io, org/app
 *   /v2/org/app/...?ns=ghcr.io     containerd mirror      -> ghcr.io, org/app
 *   /v2/library/ubuntu/...          default upstream       -> docker.io, library/ubuntu
 *   /v2/ubuntu/...                  Docker Hub short name  -> docker.io, library/ubuntu
 * All three cache under "<upstream>/<repo>", so they share one cache. A request can only ever
 * reach a configured upstream URL: an `ns` naming anything else routes nowhere (local only).
 */
import { LRUCache } from 'lru-cache';
import type { UpstreamConfig } from '../config/schema.js';
import { isValidRepoName, type RepoName } from '../oci/reference.js';
import type { RegistryClient } from '../upstream/client.js';

export interface Upstream {
  config: UpstreamConfig;
  client: RegistryClient;
}

export interface Route {
  upstream: Upstream;
  /** The repository name at the upstream (e.g. "library/ubuntu"). */
  remoteRepo: string;
  /** Where cached content lives locally (e.g. "docker.io/library/ubuntu"). */
  cacheRepo: RepoName;
  /** How the route was chosen, for logs. */
  via: 'prefix' | 'ns' | 'default';
}

const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

export class UpstreamRouter {
  private readonly byName = new Map<string, Upstream>();
  /**
   * Routes worked out, by name and ns: asked several times by every request that may go upstream,
   * and fixed for the life of the process (upstreams are configured at start). false: none.
   */
  private readonly routes = new LRUCache<string, Route | false>({ max: 10_000 });

  constructor(upstreams: Upstream[], private readonly defaultName?: string) {
    for (const u of upstreams) this.byName.set(u.config.name.toLowerCase(), u);
  }

  get upstreams(): Upstream[] {
    return [...this.byName.values()];
  }

  /** The upstream an `ns` names; "host:port" finds the upstream named "host_port". */
  get(name: string): Upstream | undefined {
    const key = name.toLowerCase().replace(':', '_');
    return this.byName.get(DOCKER_HUB_ALIASES.has(key) ? DOCKER_HUB : key) ?? this.byName.get(key);
  }

  route(name: RepoName, ns: string | undefined): Route | undefined {
    // A name never holds '?': the key cannot mix a name with an ns.
    const key = ns === undefined ? name : `${name}?${ns}`;
    let route = this.routes.get(key);
    if (route === undefined) this.routes.set(key, route = this.find(name, ns) ?? false);
    return route === false ? undefined : route;
  }

  private find(name: RepoName, ns: string | undefined): Route | undefined {
    if (ns !== undefined) {
      const upstream = this.get(ns);
      return upstream ? this.make(upstream, name, 'ns') : undefined;
    }
    const slash = name.indexOf('/');
    if (slash > 0) {
      const upstream = this.byName.get(name.slice(0, slash));
      if (upstream) return this.make(upstream, name.slice(slash + 1), 'prefix');
    }
    const fallback = this.defaultName ? this.byName.get(this.defaultName.toLowerCase()) : undefined;
    return fallback ? this.make(fallback, name, 'default') : undefined;
  }

  private make(upstream: Upstream, repo: string, via: Route['via']): Route | undefined {
    const remoteRepo = upstream.config.name === DOCKER_HUB && !repo.includes('/') ? `library/${repo}` : repo;
    const cacheRepo = `${upstream.config.name}/${remoteRepo}`;
    return isValidRepoName(cacheRepo) ? { upstream, remoteRepo, cacheRepo, via } : undefined;
  }
}
