/**
 * The JSON API over a real socket, in-process: the same htpasswd users and access rules as /v2,
 * the sign-in cookie (set, used, refused when forged or expired, cleared), the origin check on a
 * delete made with the cookie, pull counts added by the request log, `ui.enabled: false`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { AccessPolicy } from '../../src/auth/access.js';
import { BasicAuthenticator } from '../../src/auth/authenticator.js';
import { HtpasswdFile } from '../../src/auth/htpasswd.js';
import { createLogger } from '../../src/log.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { SessionCodec } from '../../src/ui/session.js';
import { testConfig } from '../helpers/app.js';
import { makeImage, pushImageHttp } from '../helpers/image.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function serve(options: { uiEnabled?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-ui-api-'));
  const file = join(dir, 'htpasswd');
  writeFileSync(file, `alice:${bcrypt.hashSync('alice-pw', 4)}\nbob:${bcrypt.hashSync('bob-pw', 4)}\n`);
  const config = testConfig();
  config.ui = { ...config.ui, enabled: options.uiEnabled ?? true };
  const log = createLogger(config.log);
  const metadata = new MetadataIndex(join(dir, 'index.sqlite'));
  const registry = new LocalRegistry(new MemoryDriver(), metadata, log);
  const authenticator = new BasicAuthenticator(new HtpasswdFile({ realm: 'test', path: file }, log));
  const policy = new AccessPolicy({ rules: [
    { repository: 'public/**', pull: ['anonymous'], push: ['alice'], delete: ['alice'] },
    { repository: 'team/**', pull: ['alice', 'bob'], push: ['alice'], delete: ['alice'] },
  ] });
  const app = buildApp({ config, registry, log, authenticator, policy, ui: { browse: metadata.browse, sessionSecret: () => metadata.sharedSecret('ui-session') } });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const alice = { authorization: basic('alice', 'alice-pw') };
  await pushImageHttp(url, 'public/tool', '1', makeImage({ seed: 1, layers: 1, layerSize: 100 }), alice);
  await pushImageHttp(url, 'team/app', '1', makeImage({ seed: 2, layers: 1, layerSize: 100 }), alice);
  await pushImageHttp(url, 'team/app', '2', makeImage({ seed: 3, layers: 1, layerSize: 100 }), alice);
  return { url, app, metadata, async close() { await app.close(); authenticator.close(); metadata.close(); } };
}

const names = async (res: Response) => ((await res.json()) as { items: Array<{ name: string }> }).items.map((i) => i.name);

t.test('the API applies the access rules', async (t) => {
  const s = await serve();
  t.teardown(() => s.close());
  const api = `${s.url}/_stowage/api`;
  t.same(await names(await fetch(`${api}/repositories`)), ['public/tool'], 'anonymous');
  t.same(await names(await fetch(`${api}/repositories`, { headers: { authorization: basic('bob', 'bob-pw') } })), ['public/tool', 'team/app'], 'bob');
  const wrong = await fetch(`${api}/repositories`, { headers: { authorization: basic('bob', 'nope') } });
  t.equal(wrong.status, 401, 'a wrong password is refused, as on /v2');
  t.equal(((await wrong.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNAUTHORIZED');
  const hidden = await fetch(`${api}/repositories/team/app`);
  t.equal(hidden.status, 401, 'anonymous: a hidden repository asks for credentials');
  t.match(hidden.headers.get('www-authenticate'), /^Basic realm="test"/);
  const tags = await (await fetch(`${api}/repositories/team/app`, { headers: { authorization: basic('bob', 'bob-pw') } })).json() as { tags: Array<{ tag: string }>; mayDelete: boolean };
  t.same(tags.tags.map((x) => x.tag), ['1', '2']);
  t.equal(tags.mayDelete, false, 'bob may not delete');
  const image = await fetch(`${api}/repositories/team/app/-/manifests/1`, { headers: { authorization: basic('alice', 'alice-pw') } });
  t.match(await image.json(), { kind: 'image', tags: ['1'], mayDelete: true, layers: [{ stored: true }] }, 'a manifest by tag');
  t.equal((await fetch(`${api}/repositories/Bad..Name`)).status, 404, 'a name that is not one');
  t.equal((await fetch(`${api}/repositories?limit=0`)).status, 400, 'a limit out of range');
});

t.test('sign-in cookie, origin check, pull counts', async (t) => {
  const s = await serve();
  t.teardown(() => s.close());
  const api = `${s.url}/_stowage/api`;
  const refused = await fetch(`${api}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'no' }) });
  t.equal(refused.status, 401);
  t.equal(refused.headers.get('set-cookie'), null, 'no cookie for wrong credentials');
  const signed = await fetch(`${api}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice-pw' }) });
  t.equal(signed.status, 200);
  const setCookie = signed.headers.get('set-cookie') ?? '';
  t.match(setCookie, /HttpOnly; SameSite=Strict; Max-Age=43200/);
  t.notMatch(setCookie, /alice-pw|YWxpY2U/, 'the cookie does not carry the credentials in clear');
  const cookie = setCookie.split(';')[0]!;
  const who = await (await fetch(`${api}/whoami`, { headers: { cookie } })).json();
  t.match(who, { user: 'alice', signedIn: true, auth: 'basic' });
  const forged = `${cookie.slice(0, -4)}AAAA`;
  t.match(await (await fetch(`${api}/whoami`, { headers: { cookie: forged } })).json(), { user: null }, 'a forged cookie is ignored');

  const del = `${api}/repositories/team/app/-/manifests/2`;
  t.equal((await fetch(del, { method: 'DELETE', headers: { cookie } })).status, 403, 'a cookie delete without Origin is refused');
  t.equal((await fetch(del, { method: 'DELETE', headers: { cookie, origin: 'http://evil.example' } })).status, 403, 'from another site too');
  t.equal((await fetch(del, { method: 'DELETE', headers: { cookie, origin: s.url } })).status, 202, 'from the page it is done');
  t.equal((await fetch(`${s.url}/v2/team/app/manifests/2`, { headers: { authorization: basic('alice', 'alice-pw') } })).status, 404, 'the tag is gone');

  for (let i = 0; i < 3; i++) await (await fetch(`${s.url}/v2/public/tool/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer();
  await s.app.close(); // flushes the counts
  const counted = s.metadata.db.prepare('SELECT SUM(pulls) FROM pull_counts WHERE repo = ?').pluck().get('public/tool');
  t.equal(counted, 3, 'three pulls counted on close');
  const minutes = s.metadata.db.prepare('SELECT SUM(requests) FROM traffic').pluck().get() as number;
  t.ok(minutes >= 3, 'and the traffic figures');
});

t.test('ui.enabled: false', async (t) => {
  const s = await serve({ uiEnabled: false });
  t.teardown(() => s.close());
  t.equal((await fetch(`${s.url}/ui/`)).status, 404);
  t.equal((await fetch(`${s.url}/_stowage/api/repositories`)).status, 404);
  t.equal((await fetch(`${s.url}/`)).status, 404);
});

t.test('the session codec', async (t) => {
  const codec = SessionCodec.fromSecret('k', 60_000);
  const sealed = codec.seal('Basic abc', 1000);
  t.equal(codec.open(sealed, 2000), 'Basic abc');
  t.equal(codec.open(sealed, 62_000), undefined, 'expired');
  t.equal(SessionCodec.fromSecret('other', 60_000).open(sealed, 2000), undefined, 'another key');
  t.equal(codec.open('garbage', 2000), undefined);
});
