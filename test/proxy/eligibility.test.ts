/**
 * Upstream eligibility (DESIGN.md "Naming and routing"), against a real registry:2 upstream whose
 * access log counts every request: a blob goes upstream only when a manifest cached in that
 * repository references it; a repository with pushed content is local; pulls by tag and by pinned
 * digest still work and fetch each blob once. Also: an index written before the reference index
 * existed is rebuilt (on start and by `stowage reindex`), and the request log counts body bytes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { imageReferencing, makeImage, prngBytes, pushBlobHttp, pushImageHttp, sha256, ALL_ACCEPT } from '../helpers/image.js';
import { childEnv, countRegistry2Requests, startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('docker-registry', 'curl');
const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

const image = makeImage({ seed: 801, layers: 2, layerSize: 100_000 });
const pinned = makeImage({ seed: 802, layers: 1, layerSize: 50_000 });
const small = { bytes: prngBytes(803, 496), digest: sha256(prngBytes(803, 496)) };
const unfetched = { bytes: prngBytes(804, 1000), digest: sha256(prngBytes(804, 1000)) };
const withSmall = imageReferencing([small, unfetched], 'small');

const upstreamRequests = (r2: Proc, part: string) => countRegistry2Requests(r2, 'GET', part) + countRegistry2Requests(r2, 'HEAD', part);

t.test('upstream eligibility with a registry:2 upstream', { skip }, async (t) => {
  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());
  await pushImageHttp(r2.url, 'library/app', '1', image);
  await pushImageHttp(r2.url, 'library/pinned', 'only-by-digest', pinned);
  await pushImageHttp(r2.url, 'library/small', '1', withSmall);
  const rootDir = await mkdtemp(join(tmpdir(), 'stowage-elig-'));
  // Client-driven fills (what a client asks for, and only that): prefetch off, per upstream
  // (prefetch.test.ts covers prefetch).
  const config = { upstreams: [{ name: 'docker.io', url: r2.url, prefetch: { enabled: false } }], default_upstream: 'docker.io' };
  let s = await startStowage({ rootDir, config });
  t.teardown(() => s.stop());
  const get = (path: string, init: RequestInit = {}) => fetch(`${s.url}${path}`, { ...init, headers: { accept: ALL_ACCEPT, ...(init.headers ?? {}) } });

  await t.test('pull by tag and by pinned digest; each blob fetched once', async (t) => {
    for (const path of ['/v2/library/app/manifests/1', '/v2/app/manifests/1', '/v2/library/app/manifests/1?ns=docker.io']) {
      const m = await get(path);
      t.equal(m.headers.get('docker-content-digest'), image.manifest.digest, `${path}: by tag`);
    }
    for (const b of [image.config, ...image.layers]) {
      for (const repo of ['library/app', 'docker.io/library/app', 'app']) {
        const r = await get(`/v2/${repo}/blobs/${b.digest}`);
        t.equal(sha256(Buffer.from(await r.arrayBuffer())), b.digest, `${repo}: blob ${b.digest.slice(7, 15)}`);
      }
      t.equal(countRegistry2Requests(r2, 'GET', `/blobs/${b.digest}`), 1, `blob ${b.digest.slice(7, 15)} fetched once`);
    }
    const byDigest = await get(`/v2/library/pinned/manifests/${pinned.manifest.digest}`);
    t.equal(byDigest.status, 200, 'a pinned digest in a repository without pushed content goes upstream');
    for (const b of [pinned.config, ...pinned.layers]) {
      const r = await get(`/v2/library/pinned/blobs/${b.digest}`);
      t.equal(sha256(Buffer.from(await r.arrayBuffer())), b.digest, 'and its blobs follow');
    }
  });

  await t.test('a digest no cached manifest references is never asked upstream', async (t) => {
    const foreign = makeImage({ seed: 805, layers: 1 }).layers[0]!;
    await pushBlobHttp(r2.url, 'library/app', foreign); // the upstream has it, but no manifest references it
    for (const path of [`/v2/library/app/blobs/${foreign.digest}`, `/v2/docker.io/library/app/blobs/${foreign.digest}`,
      `/v2/library/app/blobs/${foreign.digest}?ns=docker.io`, `/v2/app/blobs/${foreign.digest}`, `/v2/never/seen/blobs/${foreign.digest}`]) {
      for (const method of ['GET', 'HEAD']) t.equal((await get(path, { method })).status, 404, `${method} ${path}: 404`);
    }
    t.equal(upstreamRequests(r2, `/blobs/${foreign.digest}`), 0, 'the upstream saw no request for it');
  });

  await t.test('a blob pushed to one repository is not served through a cache repository', async (t) => {
    const secret = { bytes: Buffer.from('private layer'), digest: sha256('private layer') };
    await pushBlobHttp(s.url, 'private/app', secret);
    t.equal((await get(`/v2/private/app/blobs/${secret.digest}`)).status, 200, 'served where it was pushed');
    for (const path of [`/v2/docker.io/library/app/blobs/${secret.digest}`, `/v2/library/app/blobs/${secret.digest}`]) {
      t.equal((await get(path)).status, 404, `${path}: 404`);
    }
    t.equal(upstreamRequests(r2, `/blobs/${secret.digest}`), 0, 'nor asked upstream');
  });

  await t.test('a pushed repository is local: its misses cost no upstream request', async (t) => {
    const mine = makeImage({ seed: 806, layers: 1 });
    await pushImageHttp(s.url, 'team/tool', 'v1', mine);
    const before = upstreamRequests(r2, '/v2/team/tool/');
    for (const path of ['/v2/team/tool/manifests/v2', `/v2/team/tool/manifests/${sha256('nope')}`, `/v2/team/tool/blobs/${sha256('nope')}`]) {
      const r = await get(path);
      t.equal(r.status, 404, `${path}: 404`);
      t.match(await r.json(), { errors: [{ code: /_UNKNOWN$/ }] });
    }
    t.equal(upstreamRequests(r2, '/v2/team/tool/') - before, 0, 'no upstream request');
  });

  await t.test('the request log counts body bytes on a miss and on a hit', async (t) => {
    t.equal((await get('/v2/library/small/manifests/1')).status, 200);
    for (let i = 0; i < 2; i++) execFileSync('curl', ['-s', '-o', '/dev/null', `${s.url}/v2/library/small/blobs/${small.digest}`]);
    await sleep(200);
    const lines = s.logs().filter((l) => l.msg === 'request' && l.reference === small.digest);
    t.same(lines.map((l) => [l.cache, l.bytes]), [['miss', 496], ['hit', 496]]);
  });

  await t.test('an index written before the reference index is rebuilt on start', async (t) => {
    await s.stop();
    downgradeIndex(join(rootDir, 'stowage.sqlite'));
    s = await startStowage({ rootDir, config });
    t.ok(s.logs().some((l) => l.msg === 'reindex complete'), 'the old index was rebuilt at start');
    // a blob the cached manifest references but nobody fetched yet is still eligible
    const r = await get(`/v2/library/small/blobs/${unfetched.digest}`);
    t.equal(sha256(Buffer.from(await r.arrayBuffer())), unfetched.digest, 'a referenced, never fetched blob is fetched');
    await r2.stop();
    await sleep(100);
    for (const b of [image.config, ...image.layers]) {
      const c = await get(`/v2/library/app/blobs/${b.digest}`);
      t.equal(sha256(Buffer.from(await c.arrayBuffer())), b.digest, 'cached blobs pull with the upstream stopped');
    }
    t.equal((await get(`/v2/library/app/manifests/${image.manifest.digest}`)).status, 200, 'and so does the manifest');
    t.equal((await get('/v2/team/tool/manifests/v2')).status, 404, 'the pushed repository is still local after the rebuild');
  });

  await t.test('stowage reindex rebuilds an old index too', async (t) => {
    await s.stop();
    const db = join(rootDir, 'stowage.sqlite');
    downgradeIndex(db);
    const file = join(rootDir, '..', `stowage-${s.port}.yml`);
    execFileSync(process.execPath, [CLI, 'reindex', '--config', file], { env: childEnv(), encoding: 'utf8' });
    const check = new Database(db, { readonly: true });
    t.teardown(() => check.close());
    const refs = check.prepare('SELECT COUNT(*) AS n FROM manifest_refs WHERE manifest = ?').get(image.manifest.digest) as { n: number };
    t.equal(refs.n, 3, 'the cached manifest\'s config and two layers are in the reference index');
    const local = check.prepare('SELECT name FROM local_repositories ORDER BY name').all() as Array<{ name: string }>;
    t.same(local.map((r) => r.name), ['private/app', 'team/tool'], 'pushed repositories are local again, cache repositories are not');
  });
});

/** Turns the index back into what stowage wrote before the reference index (schema version 1: its tables only). */
function downgradeIndex(path: string): void {
  const db = new Database(path);
  const version1 = new Set(['meta', 'repositories', 'tags', 'manifest_types', 'referrers', 'blobs', 'uploads', 'tag_cache', 'negative_cache']);
  const later = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name).filter((n) => !version1.has(n));
  db.exec(`${later.map((n) => `DROP TABLE ${n};`).join(' ')} PRAGMA user_version = 1;`);
  db.close();
}

t.test('stowage takes the last --config (npm start -- --config FILE)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-args-'));
  const good = join(dir, 'good.yml');
  execFileSync('sh', ['-c', `printf 'version: 0.1\\nstorage: inmemory\\n' > ${good}`]);
  const out = execFileSync(process.execPath, [CLI, 'reindex', '--config', join(dir, 'missing.yml'), '--config', good], { env: childEnv(), encoding: 'utf8' });
  t.match(out, /"repositories":0/, 'the second --config was used');
  let failed = '';
  try {
    execFileSync(process.execPath, [CLI, 'reindex', '--config', good, '--config', join(dir, 'missing.yml')], { env: childEnv(), encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    failed = String((e as { stderr?: string }).stderr);
  }
  t.match(failed, /missing\.yml/, 'the last one wins the other way round too');
});
