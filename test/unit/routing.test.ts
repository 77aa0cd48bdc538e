/**
 * UpstreamRouter (src/proxy/routing.ts): the three routes (path prefix, ?ns=, default upstream) and
 * Docker Hub's short names, with routes remembered per name and ns: a remembered route must be the
 * one worked out for that very name and ns, never another's.
 */
import t from 'tap';
import { UpstreamRouter, type Upstream } from '../../src/proxy/routing.js';
import type { RepoName } from '../../src/oci/reference.js';

const upstream = (name: string) => ({ config: { name }, client: {} }) as unknown as Upstream;
const router = new UpstreamRouter([upstream('docker.io'), upstream('ghcr.io'), upstream('registry.local_5000')], 'docker.io');
const r = (name: string, ns?: string) => {
  const route = router.route(name as RepoName, ns);
  return route && { upstream: route.upstream.config.name, remoteRepo: route.remoteRepo, cacheRepo: route.cacheRepo, via: route.via };
};

t.test('each route, asked twice (the second answer is the remembered one)', async (t) => {
  for (let round = 1; round <= 2; round++) {
    t.same(r('ghcr.io/org/app'), { upstream: 'ghcr.io', remoteRepo: 'org/app', cacheRepo: 'ghcr.io/org/app', via: 'prefix' }, `prefix, round ${round}`);
    t.same(r('org/app', 'ghcr.io'), { upstream: 'ghcr.io', remoteRepo: 'org/app', cacheRepo: 'ghcr.io/org/app', via: 'ns' }, `ns, round ${round}`);
    t.same(r('org/app'), { upstream: 'docker.io', remoteRepo: 'org/app', cacheRepo: 'docker.io/org/app', via: 'default' }, `default, round ${round}`);
    t.same(r('ubuntu'), { upstream: 'docker.io', remoteRepo: 'library/ubuntu', cacheRepo: 'docker.io/library/ubuntu', via: 'default' }, `short name, round ${round}`);
    t.same(r('ubuntu', 'index.docker.io'), { upstream: 'docker.io', remoteRepo: 'library/ubuntu', cacheRepo: 'docker.io/library/ubuntu', via: 'ns' }, `Hub alias, round ${round}`);
    t.same(r('app', 'registry.local:5000'), { upstream: 'registry.local_5000', remoteRepo: 'app', cacheRepo: 'registry.local_5000/app', via: 'ns' }, `host:port ns, round ${round}`);
    t.equal(r('org/app', 'quay.io'), undefined, `an ns naming no upstream routes nowhere, round ${round}`);
  }
});

t.test('the same name with and without ns keeps its own routes', async (t) => {
  t.equal(r('x/y', 'ghcr.io')?.upstream, 'ghcr.io');
  t.equal(r('x/y')?.upstream, 'docker.io');
  t.equal(r('x/y', 'nowhere.example'), undefined);
  t.equal(r('x/y', 'ghcr.io')?.via, 'ns');
});

t.test('without a default upstream, an unprefixed name routes nowhere', async (t) => {
  const none = new UpstreamRouter([upstream('ghcr.io')]);
  t.equal(none.route('org/app' as RepoName, undefined), undefined);
  t.equal(none.route('org/app' as RepoName, undefined), undefined, 'remembered as none');
  t.equal(none.route('ghcr.io/org/app' as RepoName, undefined)?.via, 'prefix');
});
