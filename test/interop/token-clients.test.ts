/**
 * registry:2 token auth served by stowage (dist/cli.js) to real clients: skopeo and podman get
 * their tokens from the test token server (Basic credentials there, ES256 JWTs with an x5c chain
 * to the CA stowage trusts), one token per scope; stowage enforces each token's scopes per
 * repository and action, refuses expired tokens and tokens signed under another CA, and lists in
 * _catalog only what the token may pull.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeImage, writeOciLayout } from '../helpers/image.js';
import { startStowage } from '../helpers/procs.js';
import { startTokenServer, type Access } from '../helpers/token-server.js';
import { missingTools, runClient } from '../helpers/tools.js';

const skip = missingTools('skopeo', 'podman', 'openssl');


const USERS = { alice: 'alice-token-pw', bob: 'bob-token-pw' };

/** alice: everything under alice/ and the catalog; bob: pull anywhere, push nowhere; anonymous: nothing. */
function grant(user: string | undefined, scope: Access): string[] {
  if (user === 'alice' && scope.type === 'repository' && scope.name.startsWith('alice/')) return scope.actions;
  if (user === 'alice' && scope.type === 'registry' && scope.name === 'catalog') return ['*'];
  if (user === 'bob' && scope.type === 'repository') return scope.actions.filter((a) => a === 'pull');
  return [];
}

t.test('token auth with skopeo and podman', { skip, timeout: 300_000 }, async (t) => {
  const tokens = await startTokenServer({ users: USERS, grant });
  t.teardown(() => tokens.close());
  const s = await startStowage({
    config: { auth: { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootcertbundle: tokens.caFile } } },
  });
  t.teardown(() => s.stop());
  const work = mkdtempSync(join(tmpdir(), 'stowage-token-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const image = makeImage({ seed: 911, layers: 3, layerSize: 60_000 });
  await writeOciLayout(join(work, 'layout'), { v1: image });
  const host = `127.0.0.1:${s.port}`;
  const push = (repo: string, creds: string[]) => runClient('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', ...creds, `oci:${join(work, 'layout')}:v1`, `docker://${host}/${repo}:v1`]);
  const pull = (repo: string, creds: string[]) => runClient('skopeo', ['copy', '--quiet', '--src-tls-verify=false', ...creds, `docker://${host}/${repo}:v1`, `dir:${mkdtempSync(join(work, 'out-'))}`]);

  const before = tokens.requests.length;
  const pushed = await push('alice/app', ['--dest-creds', `alice:${USERS.alice}`]);
  t.ok(pushed.ok, `alice pushes alice/app with a token (${pushed.output.trim().slice(0, 200)})`);
  const asked = tokens.requests.slice(before);
  t.same(asked.filter((s) => s === 'repository:alice/app:pull,push').length, 1,
    `one token for the push scope, however many requests the push made (token requests: ${JSON.stringify(asked)})`);
  t.ok(tokens.accounts.slice(before).every((a) => a === 'alice'), 'asked as alice');

  const bobPush = await push('alice/app-copy', ['--dest-creds', `bob:${USERS.bob}`]);
  t.notOk(bobPush.ok, 'bob\'s token has no push: refused');
  t.match(bobPush.output, /unauthorized|authentication required|insufficient/i, bobPush.output.trim().slice(-200));
  t.ok((await pull('alice/app', ['--src-creds', `bob:${USERS.bob}`])).ok, 'bob may pull');
  t.notOk((await pull('alice/app', ['--src-no-creds'])).ok, 'anonymous gets a token without access: refused');
  t.notOk((await pull('alice/app', ['--src-creds', `bob:wrong`])).ok, 'the token server refuses a wrong password');

  const podman = (...args: string[]) => runClient('podman', ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs', ...args]);
  const pp = await podman('pull', '-q', '--tls-verify=false', '--creds', `bob:${USERS.bob}`, `${host}/alice/app:v1`);
  t.ok(pp.ok, `podman pulls with a token (${pp.output.trim().slice(-200)})`);
  t.match((await podman('images', '--digests', '--format', '{{.Digest}}')).output, image.manifest.digest);

  // Tokens the clients would never present, sent by hand.
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const pullAlice = [{ type: 'repository', name: 'alice/app', actions: ['pull'] }];
  const manifest = `${s.url}/v2/alice/app/manifests/v1`;
  const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
  t.equal((await fetch(manifest, { headers: { ...accept, ...bearer(tokens.issue({ access: pullAlice })) } })).status, 200, 'a fresh token works');
  const expired = await fetch(manifest, { headers: { ...accept, ...bearer(tokens.issue({ access: pullAlice, expiresIn: -3600 })) } });
  t.equal(expired.status, 401, 'an expired token is refused');
  t.match(expired.headers.get('www-authenticate'), /error="invalid_token"/);
  const stranger = await fetch(manifest, { headers: { ...accept, ...bearer(tokens.untrusted({ access: pullAlice })) } });
  t.equal(stranger.status, 401, 'a token signed under an unknown CA is refused');
  const otherRepo = await fetch(`${s.url}/v2/bob/app/manifests/v1`, { headers: { ...accept, ...bearer(tokens.issue({ access: pullAlice })) } });
  t.equal(otherRepo.status, 401, 'a token for alice/app does not open bob/app');
  t.match(otherRepo.headers.get('www-authenticate'), /scope="repository:bob\/app:pull",error="insufficient_scope"/);

  // _catalog with a token fetched from the token server, as a client would.
  await push('alice/other', ['--dest-creds', `alice:${USERS.alice}`]);
  const catalogToken = async (user: string) => {
    const r = await fetch(`${tokens.realm}?service=${tokens.service}&scope=registry:catalog:*&scope=repository:alice/app:pull`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${USERS[user as keyof typeof USERS]}`).toString('base64')}` },
    });
    return ((await r.json()) as { token: string }).token;
  };
  const listed = await fetch(`${s.url}/v2/_catalog`, { headers: bearer(await catalogToken('alice')) });
  t.equal(listed.status, 200);
  t.same(((await listed.json()) as { repositories: string[] }).repositories, ['alice/app'], '_catalog lists only what the token may pull (alice/other is not in it)');
  const noCatalog = await fetch(`${s.url}/v2/_catalog`, { headers: bearer(await catalogToken('bob')) });
  t.equal(noCatalog.status, 401, 'bob\'s token has no registry:catalog:*');
  t.match(noCatalog.headers.get('www-authenticate'), /scope="registry:catalog:\*",error="insufficient_scope"/);
  t.notMatch(s.output(), /eyJ[A-Za-z0-9_-]{20,}/, 'no token in stowage\'s logs');
});
