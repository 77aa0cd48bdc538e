/**
 * The Bearer flow against the real registry:2 implementation: docker-registry with `auth: token`
 * and a token server of our own. stowage answers the challenge, then reuses the token: one token
 * fetch per scope, not per request. With credentials, the token server checks them.
 */
import t from 'tap';
import { ALL_ACCEPT, makeImage, pushImageHttp, sha256 } from '../helpers/image.js';
import { startRegistry2, startStowage } from '../helpers/procs.js';
import { startTokenServer } from '../helpers/token-server.js';
import { missingTools } from '../helpers/tools.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const skip = missingTools('docker-registry', 'openssl');

t.test('token-auth upstream (registry:2 auth: token)', { skip }, async (t) => {
  const credentials = { username: 'puller', password: 'secret-pw' };
  const tokens = await startTokenServer({ credentials });
  t.teardown(() => tokens.close());
  // seed the content through an open registry:2 on the same directory, then serve it with token auth
  const root = await mkdtemp(join(tmpdir(), 'r2-token-'));
  const seed = await startRegistry2({ rootDir: join(root, 'data') });
  const one = makeImage({ seed: 31, layers: 2 });
  const two = makeImage({ seed: 32, layers: 1 });
  await pushImageHttp(seed.url, 'private/one', 'v1', one);
  await pushImageHttp(seed.url, 'private/two', 'v1', two);
  await seed.stop();
  const r2 = await startRegistry2({
    rootDir: join(root, 'data'),
    config: { auth: { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootcertbundle: tokens.caFile } } },
  });
  t.teardown(() => r2.stop());
  const denied = await fetch(`${r2.url}/v2/private/one/manifests/v1`);
  t.equal(denied.status, 401, 'the upstream really requires a token');
  t.match(denied.headers.get('www-authenticate') ?? '', /^Bearer realm=/);

  const s = await startStowage({
    config: { upstreams: [{ name: 'private.test', url: r2.url, username: credentials.username, password: credentials.password }] },
  });
  t.teardown(() => s.stop());
  for (let i = 0; i < 10; i++) {
    const r = await fetch(`${s.url}/v2/private.test/private/one/manifests/${i === 0 ? 'v1' : one.manifest.digest}`, { headers: { accept: ALL_ACCEPT } });
    t.equal(r.status, 200, `manifest request ${i + 1}`);
    await r.arrayBuffer();
  }
  for (const b of [one.config, ...one.layers]) {
    const r = await fetch(`${s.url}/v2/private.test/private/one/blobs/${b.digest}`);
    t.equal(sha256(Buffer.from(await r.arrayBuffer())), b.digest, 'blob through the token-auth upstream');
  }
  t.same(tokens.requests, ['repository:private/one:pull'], 'one token fetch for that scope, however many requests');
  const r = await fetch(`${s.url}/v2/private.test/private/two/manifests/v1`, { headers: { accept: ALL_ACCEPT } });
  t.equal(r.status, 200);
  t.same(tokens.requests, ['repository:private/one:pull', 'repository:private/two:pull'], 'a new scope, one more fetch');
  const logs = s.output();
  t.notMatch(logs, /secret-pw/, 'the password never reaches the logs');
  t.notMatch(logs, /eyJ[A-Za-z0-9_-]{20,}/, 'no token in the logs');

  // wrong credentials: the token server refuses, the client gets a clean error
  const wrong = await startStowage({
    config: { upstreams: [{ name: 'private.test', url: r2.url, username: 'puller', password: 'nope' }] },
  });
  t.teardown(() => wrong.stop());
  const refused = await fetch(`${wrong.url}/v2/private.test/private/one/manifests/v1`, { headers: { accept: ALL_ACCEPT } });
  t.equal(refused.status, 502);
  t.equal(((await refused.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNAVAILABLE');
});
