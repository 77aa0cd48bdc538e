/**
 * The /v2 gate in-process: htpasswd with access rules and groups in front of a pull-through cache
 * whose upstream is another stowage app on a loopback socket; token auth with tokens from the test
 * token server; the upload cap. Every request goes over a real socket (fetch), as clients send it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { AccessPolicy, type AccessOptions } from '../../src/auth/access.js';
import { BasicAuthenticator, TokenAuthenticator, type Authenticator } from '../../src/auth/authenticator.js';
import { HtpasswdFile } from '../../src/auth/htpasswd.js';
import { TokenIssuer } from '../../src/auth/issuer.js';
import { TokenVerifier } from '../../src/auth/token.js';
import type { UpstreamConfig } from '../../src/config/schema.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { Metrics } from '../../src/metrics.js';
import { PullThrough } from '../../src/proxy/pull-through.js';
import { UpstreamRouter } from '../../src/proxy/routing.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { UpstreamClient } from '../../src/upstream/client.js';
import { makeApp, testConfig } from '../helpers/app.js';
import { ALL_ACCEPT, makeImage, pushBlobHttp, pushImageHttp, type Image } from '../helpers/image.js';
import { startTokenServer } from '../helpers/token-server.js';
import { missingTools } from '../helpers/tools.js';

const PASSWORDS: Record<string, string> = { alice: 'alice-secret-1', bob: 'bob-secret-2', 'runner-1': 'runner-secret-3' };
const basic = (user: string, password = PASSWORDS[user]!) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

const RULES: AccessOptions = {
  rules: [
    { repository: 'docker.io/**', pull: ['anonymous'] },
    { repository: 'team-a/**', pull: ['alice', 'group:ci'], push: ['alice'], delete: ['alice'] },
    { repository: 'team-b/**', pull: ['bob'], push: ['bob'] },
    { repository: '**', pull: ['authenticated'], push: ['authenticated'] },
  ],
  groups: { ci: ['runner-1'] },
};

interface Server { url: string; app: FastifyInstance; logs: string[]; metrics: Metrics; close(): Promise<void> }

async function upstreamWith(images: Record<string, Image>): Promise<{ url: string; close(): Promise<void> }> {
  const up = makeApp();
  const url = await up.app.listen({ host: '127.0.0.1', port: 0 });
  for (const [ref, img] of Object.entries(images)) {
    const [repo, tag] = ref.split(':');
    await pushImageHttp(url, repo!, tag!, img);
  }
  return { url, close: () => up.close() };
}

async function serve(options: { authenticator?: Authenticator; policy?: AccessPolicy; upstream?: string; maxConcurrentUploads?: number }): Promise<Server> {
  const config = testConfig();
  if (options.maxConcurrentUploads) config.http.max_concurrent_uploads = options.maxConcurrentUploads;
  const logs: string[] = [];
  const log = pino({ level: 'debug', redact: ['req.headers.authorization'] }, { write: (l: string) => { logs.push(l); } });
  const metadata = new MetadataIndex(':memory:');
  const registry = new LocalRegistry(new MemoryDriver(), metadata, log);
  const metrics = new Metrics();
  const upstreams = options.upstream ? [upstreamConfig(options.upstream)].map((cfg) => ({ config: cfg, client: new UpstreamClient(cfg, { log }) })) : [];
  const proxy = upstreams.length ? new PullThrough({ registry, metadata, log, metrics, router: new UpstreamRouter(upstreams, 'docker.io') }) : undefined;
  const app = buildApp({
    config, log, registry, metrics,
    ...(proxy ? { proxy } : {}),
    ...(options.authenticator ? { authenticator: options.authenticator } : {}),
    ...(options.policy ? { policy: options.policy } : {}),
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    url, app, logs, metrics,
    async close() {
      await app.close();
      await Promise.all(upstreams.map((u) => u.client.close()));
      options.authenticator?.close();
      metadata.close();
    },
  };
}

function upstreamConfig(url: string): UpstreamConfig {
  return {
    name: 'docker.io', url, tagTtlMs: 60_000, negativeTtlMs: 0, revalidateTimeoutMs: 1000, connectTimeoutMs: 1000,
    headersTimeoutMs: 5000, bodyTimeoutMs: 5000, maxConcurrent: 4, contentTtlMs: 0, breakerFailures: 3, breakerCooldownMs: 1000,
  };
}

const writeHtpasswd = (path: string, users: Record<string, string>) =>
  writeFileSync(path, Object.entries(users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 4)}`).join('\n') + '\n');

function htpasswdAuthenticator(issuer?: TokenIssuer, path = join(mkdtempSync(join(tmpdir(), 'auth-http-')), 'htpasswd'), log = pino({ level: 'silent' })): BasicAuthenticator {
  writeHtpasswd(path, PASSWORDS);
  return new BasicAuthenticator(new HtpasswdFile({ realm: 'stowage test', path, reloadIntervalMs: 50 }, log), issuer);
}

const call = async (url: string, init: RequestInit = {}) => {
  const r = await fetch(url, { ...init, headers: { accept: ALL_ACCEPT, ...(init.headers as Record<string, string> ?? {}) } });
  const body = Buffer.from(await r.arrayBuffer());
  let code: string | undefined;
  try { code = (JSON.parse(body.toString()) as { errors?: Array<{ code: string }> }).errors?.[0]?.code; } catch { code = undefined; }
  return { status: r.status, headers: r.headers, body, code };
};

const alpine = makeImage({ seed: 501, layers: 1 });
const teamApp = makeImage({ seed: 502, layers: 2 });
const bobImage = makeImage({ seed: 503, layers: 1 });

t.test('htpasswd + access rules in front of a pull-through cache', async (t) => {
  const upstream = await upstreamWith({ 'library/alpine:3': alpine });
  t.teardown(() => upstream.close());
  const s = await serve({ authenticator: htpasswdAuthenticator(), policy: new AccessPolicy(RULES), upstream: upstream.url });
  t.teardown(() => s.close());

  await t.test('GET /v2/ asks for a login (docker login works), wrong passwords are refused, logged and counted', async (t) => {
    const anon = await call(`${s.url}/v2/`);
    t.equal(anon.status, 401);
    t.equal(anon.code, 'UNAUTHORIZED');
    t.equal(anon.headers.get('www-authenticate'), 'Basic realm="stowage test"');
    t.equal(anon.headers.get('docker-distribution-api-version'), 'registry/2.0');
    t.equal((await call(`${s.url}/v2/`, { headers: basic('alice') })).status, 200);
    const wrong = await call(`${s.url}/v2/`, { headers: basic('alice', 'not-her-password') });
    t.equal(wrong.status, 401);
    t.equal(wrong.headers.get('www-authenticate'), 'Basic realm="stowage test"');
    t.notMatch(wrong.body.toString(), /not-her-password|alice/, 'the error body names no credential');
    const failure = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'authentication failed');
    t.match(failure, { user: 'alice', address: '127.0.0.1', reason: /wrong/ }, 'the failed login is logged with user and address');
    t.match(await s.metrics.registry.metrics(), /stowage_auth_failures_total\{scheme="basic"\} 1/, 'and counted');
    t.notMatch(s.logs.join('\n'), /not-her-password|alice-secret|YWxpY2U6/, 'no password or Authorization value in the logs');
  });

  await t.test('anonymous pull of cached content on every route, matched by its cache repository name', async (t) => {
    for (const url of [
      `${s.url}/v2/docker.io/library/alpine/manifests/3`,
      `${s.url}/v2/library/alpine/manifests/3?ns=docker.io`,
      `${s.url}/v2/library/alpine/manifests/3`,
      `${s.url}/v2/alpine/manifests/3`,
    ]) {
      const r = await call(url);
      t.equal(r.status, 200, url.slice(s.url.length));
      t.equal(r.headers.get('docker-content-digest'), alpine.manifest.digest);
    }
    t.equal((await call(`${s.url}/v2/alpine/blobs/${alpine.layers[0]!.digest}`)).status, 200, 'a blob by the short name');
    t.equal((await call(`${s.url}/v2/docker.io/library/alpine/tags/list`)).status, 200, 'tags');
  });

  await t.test('pushes: anonymous 401 with the challenge, another team 403, the owner 201', async (t) => {
    const anon = await call(`${s.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST' });
    t.equal(anon.status, 401);
    t.equal(anon.headers.get('www-authenticate'), 'Basic realm="stowage test"');
    const intoCache = await call(`${s.url}/v2/docker.io/library/alpine/blobs/uploads/`, { method: 'POST', headers: basic('alice') });
    t.equal(intoCache.status, 403, 'nobody may push into the cache');
    const bob = await call(`${s.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: basic('bob') });
    t.equal(bob.status, 403);
    t.equal(bob.code, 'DENIED');
    await pushImageHttp(s.url, 'team-a/app', '1.0', teamApp, basic('alice'));
    await pushImageHttp(s.url, 'team-b/tool', '1.0', bobImage, basic('bob'));
    const runner = await call(`${s.url}/v2/team-a/app/manifests/1.0`, { headers: basic('runner-1') });
    t.equal(runner.status, 200, 'a group member pulls');
    t.equal((await call(`${s.url}/v2/team-a/app/manifests/1.0`, { method: 'PUT', body: teamApp.manifest.bytes, headers: { ...basic('runner-1'), 'content-type': teamApp.manifest.mediaType } })).status, 403, 'but may not push');
    t.equal((await call(`${s.url}/v2/team-a/app/manifests/1.0`, { headers: basic('bob') })).status, 403, 'bob may not pull team-a');
    t.equal((await call(`${s.url}/v2/team-a/app/manifests/1.0`)).status, 401, 'anonymous may not pull team-a');
    t.equal((await call(`${s.url}/v2/team-a/app/manifests/1.0`, { method: 'DELETE', headers: basic('runner-1') })).status, 403, 'delete needs delete');
  });

  await t.test('a pushed repository under a default-upstream name is not covered by the cache rule', async (t) => {
    await pushImageHttp(s.url, 'library/private', 'v1', bobImage, basic('bob'));
    t.equal((await call(`${s.url}/v2/library/private/manifests/v1`)).status, 401, 'anonymous: the ** rule (authenticated) decides too');
    t.equal((await call(`${s.url}/v2/library/private/manifests/v1`, { headers: basic('runner-1') })).status, 200, 'any user');
  });

  await t.test('_catalog lists what the caller may pull', async (t) => {
    const names = async (headers: Record<string, string> = {}) => ((await call(`${s.url}/v2/_catalog`, { headers })).body.toString());
    const list = async (headers: Record<string, string> = {}) => (JSON.parse(await names(headers)) as { repositories: string[] }).repositories;
    t.same(await list(), ['docker.io/library/alpine'], 'anonymous');
    t.same(await list(basic('alice')), ['docker.io/library/alpine', 'library/private', 'team-a/app']);
    t.same(await list(basic('bob')), ['docker.io/library/alpine', 'library/private', 'team-b/tool']);
    const paged = await call(`${s.url}/v2/_catalog?n=1`, { headers: basic('bob') });
    t.same(JSON.parse(paged.body.toString()).repositories, ['docker.io/library/alpine']);
    t.match(paged.headers.get('link') ?? '', /last=docker\.io%2Flibrary%2Falpine/);
    const next = await call(`${s.url}/v2/_catalog?n=1&last=library%2Fprivate`, { headers: basic('bob') });
    t.same(JSON.parse(next.body.toString()).repositories, ['team-b/tool'], 'a page skips what the caller may not see (team-a/app)');
    t.equal(next.headers.get('link'), null, 'and ends there');
  });

  await t.test('cross-repository mount needs pull on from; without it a plain upload starts', async (t) => {
    const layer = teamApp.layers[0]!.digest;
    const refused = await call(`${s.url}/v2/team-b/copy/blobs/uploads/?mount=${layer}&from=team-a/app`, { method: 'POST', headers: basic('bob') });
    t.equal(refused.status, 202, 'bob cannot read team-a: a normal upload session');
    t.ok(refused.headers.get('docker-upload-uuid'));
    t.equal((await call(`${s.url}/v2/team-b/copy/blobs/${layer}`, { method: 'HEAD', headers: basic('bob') })).status, 404, 'nothing was linked');
    const mounted = await call(`${s.url}/v2/team-a/copy/blobs/uploads/?mount=${layer}&from=team-a/app`, { method: 'POST', headers: basic('alice') });
    t.equal(mounted.status, 201, 'alice may read team-a: mounted');
  });
});

t.test('htpasswd with anonymous rules: stowage issues its own tokens (Docker can pull anonymously)', async (t) => {
  const upstream = await upstreamWith({ 'library/alpine:3': alpine });
  t.teardown(() => upstream.close());
  const s = await serve({ authenticator: htpasswdAuthenticator(new TokenIssuer()), policy: new AccessPolicy(RULES), upstream: upstream.url });
  t.teardown(() => s.close());
  const realm = `${s.url}/auth/token`;
  const ping = await call(`${s.url}/v2/`);
  t.equal(ping.status, 401, '/v2/ still asks for credentials');
  t.equal(ping.headers.get('www-authenticate'), `Bearer realm="${realm}",service="stowage test"`);
  const token = async (headers: Record<string, string> = {}) => {
    const r = await call(`${realm}?service=stowage%20test&scope=repository:team-a/app:pull,push`, { headers });
    return { status: r.status, token: r.status === 200 ? (JSON.parse(r.body.toString()) as { token: string }).token : '', r };
  };
  const anon = await token();
  t.equal(anon.status, 200, 'an anonymous token');
  t.match(JSON.parse(anon.r.body.toString()), { expires_in: 300, access_token: anon.token, issued_at: /^\d{4}-/ });
  const bearer = (tk: string) => ({ authorization: `Bearer ${tk}` });
  t.equal((await call(`${s.url}/v2/`, { headers: bearer(anon.token) })).status, 200, '/v2/ with any valid token');
  t.equal((await call(`${s.url}/v2/library/alpine/manifests/3`, { headers: bearer(anon.token) })).status, 200, 'anonymous token pulls the cache');
  const anonPush = await call(`${s.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(anon.token) });
  t.equal(anonPush.status, 401, 'but may not push: 401, a login could help');
  t.equal(anonPush.headers.get('www-authenticate'), `Bearer realm="${realm}",service="stowage test",scope="repository:team-a/app:pull,push"`);

  const wrong = await token(basic('alice', 'wrong'));
  t.equal(wrong.status, 401, 'the token endpoint refuses a wrong password (docker login fails)');
  t.equal(wrong.r.headers.get('www-authenticate'), 'Basic realm="stowage test"');
  t.match(await s.metrics.registry.metrics(), /stowage_auth_failures_total\{scheme="basic"\} 1/, 'counted');
  const alice = await token(basic('alice'));
  t.equal((await call(`${s.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(alice.token) })).status, 202, 'alice\'s token pushes');
  const bob = await token(basic('bob'));
  t.equal((await call(`${s.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(bob.token) })).status, 403, 'bob\'s token: 403');
  t.equal((await call(`${s.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: basic('alice') })).status, 202, 'Basic credentials still work directly');
  const forged = `${alice.token.slice(0, -4)}AAAA`;
  t.equal((await call(`${s.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(forged) })).status, 401, 'a tampered token');
  const foreign = new TokenIssuer();
  const other = await foreign.issue('alice');
  t.equal((await call(`${s.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(other.token) })).status, 401, 'a token signed with another key');
  t.notMatch(s.logs.join('\n'), /eyJ[A-Za-z0-9_-]{20,}/, 'no token in the logs');
});

t.test('verified tokens and Basic credentials are cached, yet an expired token or a removed user is refused at the next request', async (t) => {
  const upstream = await upstreamWith({ 'library/alpine:3': alpine });
  t.teardown(() => upstream.close());
  let clock = Math.floor(Date.now() / 1000) * 1000; // tokens count whole seconds
  const issuer = new TokenIssuer(Buffer.alloc(32, 7), { lifetimeSeconds: 60, now: () => clock });
  const dir = mkdtempSync(join(tmpdir(), 'auth-http-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const reloads: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => { if (l.includes('htpasswd file reloaded')) reloads.push(l); } });
  const s = await serve({ authenticator: htpasswdAuthenticator(issuer, join(dir, 'htpasswd'), log), policy: new AccessPolicy(RULES), upstream: upstream.url });
  t.teardown(() => s.close());
  const token = async (headers: Record<string, string> = {}) =>
    (JSON.parse((await call(`${s.url}/auth/token?service=stowage%20test`, { headers })).body.toString()) as { token: string }).token;
  const bearer = (tk: string) => ({ authorization: `Bearer ${tk}` });
  const pull = async (headers: Record<string, string>) => (await call(`${s.url}/v2/team-a/app/manifests/1`, { headers })).code;
  await pushImageHttp(s.url, 'team-a/app', '1', teamApp, basic('alice'));

  const anon = await token();
  const alice = await token(basic('alice'));
  for (let i = 0; i < 3; i++) t.equal(await pull(bearer(alice)), undefined, `alice's token pulls (${i + 1}: verified once, then from the cache)`);
  t.equal((await call(`${s.url}/v2/library/alpine/manifests/3`, { headers: bearer(anon) })).status, 200, 'an anonymous token pulls what anonymous may');

  clock += 59_000;
  t.equal(await pull(bearer(alice)), undefined, 'a second before it expires the cached token still works');
  clock += 1_000;
  const expired = await call(`${s.url}/v2/team-a/app/manifests/1`, { headers: bearer(alice) });
  t.equal(expired.status, 401, 'at its expiry the cached token is refused');
  t.match(expired.headers.get('www-authenticate'), /^Bearer realm=/, 'with the challenge to fetch a new one');
  t.equal((await call(`${s.url}/v2/library/alpine/manifests/3`, { headers: bearer(anon) })).status, 401, 'an expired anonymous token too');

  const fresh = await token(basic('alice'));
  t.equal(await pull(bearer(fresh)), undefined, 'a new token works');
  t.equal(await pull(basic('alice')), undefined, 'and Basic credentials (bcrypt once, then cached)');
  t.equal(await pull(basic('alice')), undefined, 'Basic again, from the cache');

  const { alice: _removed, ...others } = PASSWORDS;
  writeHtpasswd(join(dir, 'htpasswd'), others);
  for (let i = 0; i < 200 && reloads.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  t.equal(reloads.length, 1, 'the file was reloaded');
  const revoked = await call(`${s.url}/v2/team-a/app/manifests/1`, { headers: bearer(fresh) });
  t.equal(revoked.status, 401, 'the next request with the removed user\'s cached token is refused');
  t.equal((await call(`${s.url}/v2/team-a/app/manifests/1`, { headers: basic('alice') })).status, 401, 'and with their cached Basic credentials');
  t.equal((await call(`${s.url}/auth/token`, { headers: basic('alice') })).status, 401, 'no new token either');
  t.equal(await pull(basic('runner-1')), undefined, 'the users still in the file keep working');
  t.ok(s.logs.some((l) => l.includes('the token names an unknown user')), 'the refusal is logged with its reason');
});

t.test('rules without auth: everyone is anonymous, refusals are 403', async (t) => {
  const s = await serve({ policy: new AccessPolicy({ rules: [{ repository: '**', pull: ['anonymous'] }] }) });
  t.teardown(() => s.close());
  t.equal((await call(`${s.url}/v2/`)).status, 200);
  const push = await call(`${s.url}/v2/x/blobs/uploads/`, { method: 'POST' });
  t.equal(push.status, 403);
  t.equal(push.headers.get('www-authenticate'), null);
});

t.test('token auth', { skip: missingTools('openssl') }, async (t) => {
  const ts = await startTokenServer();
  t.teardown(() => ts.close());
  const verifier = new TokenVerifier({ realm: ts.realm, service: ts.service, issuer: ts.issuer, rootcertbundle: ts.caFile });
  const s = await serve({ authenticator: new TokenAuthenticator(verifier) });
  t.teardown(() => s.close());
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const repo = (name: string, ...actions: string[]) => ({ type: 'repository', name, actions });
  const pushToken = ts.issue({ sub: 'ci', access: [repo('team/app', 'pull', 'push')] });
  await pushImageHttp(s.url, 'team/app', 'v1', teamApp, bearer(pushToken));
  await pushImageHttp(s.url, 'other/app', 'v1', bobImage, bearer(ts.issue({ access: [repo('other/app', 'pull', 'push')] })));

  const anon = await call(`${s.url}/v2/team/app/manifests/v1`);
  t.equal(anon.status, 401);
  t.equal(anon.headers.get('www-authenticate'), `Bearer realm="${ts.realm}",service="${ts.service}",scope="repository:team/app:pull"`);
  const base = await call(`${s.url}/v2/`);
  t.equal(base.headers.get('www-authenticate'), `Bearer realm="${ts.realm}",service="${ts.service}"`, '/v2/ challenge has no scope');
  t.equal((await call(`${s.url}/v2/`, { headers: bearer(ts.issue({ access: [] })) })).status, 200, '/v2/ needs a valid token, no access');

  const pullOnly = bearer(ts.issue({ access: [repo('team/app', 'pull')] }));
  t.equal((await call(`${s.url}/v2/team/app/manifests/v1`, { headers: pullOnly })).status, 200, 'pull with a pull token');
  t.equal((await call(`${s.url}/v2/other/app/manifests/v1`, { headers: pullOnly })).status, 401, 'scopes are per repository');
  const push = await call(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: pullOnly });
  t.equal(push.status, 401, 'scopes are per action');
  t.equal(push.headers.get('www-authenticate'), `Bearer realm="${ts.realm}",service="${ts.service}",scope="repository:team/app:pull,push",error="insufficient_scope"`);
  const del = await call(`${s.url}/v2/team/app/manifests/v1`, { method: 'DELETE', headers: bearer(pushToken) });
  t.match(del.headers.get('www-authenticate'), /scope="repository:team\/app:delete",error="insufficient_scope"/, 'delete is its own action');

  const expired = await call(`${s.url}/v2/team/app/manifests/v1`, { headers: bearer(ts.issue({ access: [repo('team/app', 'pull')], expiresIn: -3600 })) });
  t.equal(expired.status, 401, 'an expired token');
  t.match(expired.headers.get('www-authenticate'), /error="invalid_token"/);
  const stranger = await call(`${s.url}/v2/team/app/manifests/v1`, { headers: bearer(ts.untrusted({ access: [repo('team/app', 'pull')] })) });
  t.equal(stranger.status, 401, 'a token signed under an unknown CA');

  const mount = await call(`${s.url}/v2/team/app/blobs/uploads/?mount=${bobImage.layers[0]!.digest}&from=other/app`, { method: 'POST', headers: bearer(pushToken) });
  t.equal(mount.status, 202, 'no pull on from: the mount becomes a plain upload');

  t.equal((await call(`${s.url}/v2/_catalog`, { headers: pullOnly })).status, 401, 'the catalog needs registry:catalog:*');
  const catalogToken = bearer(ts.issue({ access: [{ type: 'registry', name: 'catalog', actions: ['*'] }] }));
  t.same(JSON.parse((await call(`${s.url}/v2/_catalog`, { headers: catalogToken })).body.toString()).repositories, [],
    'a catalog token lists the repositories it may also pull: none');
  const both = bearer(ts.issue({ access: [{ type: 'registry', name: 'catalog', actions: ['*'] }, repo('team/app', 'pull')] }));
  t.same(JSON.parse((await call(`${s.url}/v2/_catalog`, { headers: both })).body.toString()).repositories, ['team/app'], '_catalog filtered by the token');
  t.notMatch(s.logs.join('\n'), /eyJ[A-Za-z0-9_-]{20,}/, 'no token in the logs');
});

t.test('at most N uploads at once: the next gets 429, pulls go on', async (t) => {
  const s = await serve({ maxConcurrentUploads: 1 });
  t.teardown(() => s.close());
  const start = await call(`${s.url}/v2/slow/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location')!, s.url);
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const body = new ReadableStream({
    async start(controller) {
      controller.enqueue(new Uint8Array(1000));
      await gate;
      controller.close();
    },
  });
  const slow = fetch(location, { method: 'PATCH', body, duplex: 'half', headers: { 'content-type': 'application/octet-stream' } } as RequestInit);
  await new Promise((r) => setTimeout(r, 200));
  const second = await call(`${s.url}/v2/other/blobs/uploads/?digest=${bobImage.config.digest}`, { method: 'POST', body: bobImage.config.bytes });
  t.equal(second.status, 429);
  t.equal(second.code, 'TOOMANYREQUESTS');
  t.equal(second.headers.get('retry-after'), '1');
  t.equal((await call(`${s.url}/v2/`)).status, 200, 'other requests are served meanwhile');
  release();
  t.equal((await slow).status, 202, 'the running upload completes');
  await pushBlobHttp(s.url, 'other', bobImage.config);
  t.pass('after it, the next upload goes through');
  t.match(await s.metrics.registry.metrics(), /stowage_uploads_refused_total 1/);
});
