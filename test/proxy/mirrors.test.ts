/**
 * Upstream mirrors, end to end: a stowage process whose upstream (Debian's registry:2) has a chain
 * of mirrors in front that refuse connections, answer 500, hang, lack content (404) or lie. A pull
 * gets verified content whichever endpoint served it, the tag is cached as the upstream's, the
 * last answer is final, every mirror has its own breaker (health and metrics show each), the log
 * and metrics say who served each fill, and each endpoint sees only its own credentials.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ALL_ACCEPT, makeImage, pushImageHttp, sha256 } from '../helpers/image.js';
import { startLyingUpstream } from '../helpers/lying-upstream.js';
import { countRegistry2Requests, startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { missingTools, sleep, startBlackhole } from '../helpers/tools.js';

const skip = missingTools('docker-registry');
/** Port 1 on loopback: nothing listens there (a free port another process could take meanwhile). */
const REFUSED = 'http://127.0.0.1:1';
const host = (url: string) => new URL(url).host;
const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;

async function get(url: string): Promise<{ status: number; body: Buffer; code?: string }> {
  const r = await fetch(url, { headers: { accept: ALL_ACCEPT } });
  const body = Buffer.from(await r.arrayBuffer());
  const code = r.status >= 400 ? (JSON.parse(body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code : undefined;
  return { status: r.status, body, ...(code ? { code } : {}) };
}

/** `name{labels} value` lines of /metrics for one metric. */
async function metric(s: Proc, name: string): Promise<string[]> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`));
}

t.test('a pull through a chain of broken and partial mirrors', { skip }, async (t) => {
  const upstream = await startRegistry2();
  t.teardown(() => upstream.stop());
  const image = makeImage({ seed: 171, layers: 3, layerSize: 256 * 1024 });
  await pushImageHttp(upstream.url, 'org/app', 'v1', image);

  const refused = REFUSED;
  const failing = await startLyingUpstream({ status: 500 });
  const hung = await startBlackhole();
  // A partial site cache: it has the manifest, but none of the blobs.
  const partial = await startLyingUpstream();
  partial.manifests.set('org/app:v1', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType, behaviour: 'good' });
  t.teardown(async () => { await failing.close(); await hung.close(); await partial.close(); });

  const s = await startStowage({
    config: {
      upstreams: [{
        name: 'up.test', url: upstream.url,
        // Long cooldowns: the open breakers stay open for the rest of the test.
        mirrors: [
          { url: refused, circuit_breaker: { cooldown: '5m' } },
          { url: failing.url, circuit_breaker: { cooldown: '5m' } },
          { url: hung.url, timeout: '500ms', circuit_breaker: { cooldown: '5m' } },
          { url: partial.url },
        ],
      }],
    },
  });
  t.teardown(() => s.stop());
  const base = `${s.url}/v2/up.test/org/app`;

  const manifest = await get(`${base}/manifests/v1`);
  t.equal(manifest.status, 200);
  t.equal(sha256(manifest.body), image.manifest.digest, 'the manifest the partial mirror had, verified');
  for (const b of [image.config, ...image.layers]) {
    const got = await get(`${base}/blobs/${b.digest}`);
    t.equal(sha256(got.body), b.digest, 'a blob only the upstream had');
  }
  t.equal(countRegistry2Requests(upstream, 'GET', '/manifests/'), 0, 'the upstream was not asked for the manifest a mirror served');
  t.equal(countRegistry2Requests(upstream, 'GET', '/blobs/'), 4, 'the upstream served the four blobs');
  t.equal(partial.requests('/blobs/'), 4, 'the partial mirror was asked for each blob (and said 404)');
  t.ok(existsSync(join(s.rootDir, 'docker/registry/v2/repositories/up.test/org/app/_manifests/tags/v1/current/link')),
    "the tag resolved through a mirror is cached as the upstream's");

  // The last fill's line may reach stdout just after its client has the bytes.
  const servedLines = () => s.logs().filter((l) => l.msg === 'upstream request served');
  for (let i = 0; i < 50 && servedLines().length < 5; i++) await sleep(100);
  const served = servedLines();
  t.same(served.filter((l) => l.kind === 'manifest').map((l) => l.servedBy), [host(partial.url)], 'the log says which mirror served the manifest');
  t.same(served.filter((l) => l.kind === 'blob').map((l) => l.servedBy), Array(4).fill(host(upstream.url)), '... and each blob');
  t.match((served[0]!.passed as string[]).join(' '), new RegExp(`${host(refused)}: unavailable.*${host(failing.url)}: unavailable.*${host(hung.url)}: timeout`),
    'with the mirrors passed over and why');
  const servedMetric = await metric(s, 'stowage_upstream_served_total');
  t.ok(servedMetric.includes(`stowage_upstream_served_total{upstream="up.test",served_by="${host(upstream.url)}",kind="blob"} 4`), servedMetric.join('\n'));
  t.ok(servedMetric.includes(`stowage_upstream_served_total{upstream="up.test",served_by="${host(partial.url)}",kind="manifest"} 1`));

  // A mirror's breaker opens at its first outage (circuit_breaker.failures defaults to 1 for
  // mirrors): the blob requests went past them without a connection attempt or a timeout.
  t.same([failing.seen.length, hung.connections()], [1, 1], 'each broken mirror was tried once in the whole pull');
  // The three broken mirrors' breakers are open; each mirror is reported apart.
  const reachable = async () => Object.fromEntries((await metric(s, 'stowage_upstream_reachable')).map((l) => {
    const m = /upstream="([^"]+)"} (\d)/.exec(l)!;
    return [m[1]!, Number(m[2])];
  }));
  const expected = {
    'up.test': 1, [`up.test@${host(refused)}`]: 0, [`up.test@${host(failing.url)}`]: 0, [`up.test@${host(hung.url)}`]: 0, [`up.test@${host(partial.url)}`]: 1,
  };
  // The breaker checks run every 5 s.
  let last = await reachable();
  for (const end = Date.now() + 15_000; JSON.stringify(last) !== JSON.stringify(expected) && Date.now() < end;) {
    await sleep(250);
    last = await reachable();
  }
  t.same(last, expected, 'health reports each mirror by its own breaker');
  const hungBefore = hung.connections();
  const failingBefore = failing.seen.length;

  // The second pull (cached) asks nobody; a cold one skips the open breakers at once.
  t.equal((await get(`${base}/manifests/v1`)).status, 200);
  const other = makeImage({ seed: 172, layers: 1, layerSize: 1024 });
  await pushImageHttp(upstream.url, 'org/other', 'v1', other);
  t.equal(sha256((await get(`${s.url}/v2/up.test/org/other/manifests/v1`)).body), other.manifest.digest);
  t.same([hung.connections(), failing.seen.length], [hungBefore, failingBefore], 'open breakers: the broken mirrors were not contacted');

  // Nobody has it: the partial mirror's 404 is passed on, the upstream's 404 is the answer.
  const missing = await get(`${s.url}/v2/up.test/org/app/manifests/nope`);
  t.same([missing.status, missing.code], [404, 'MANIFEST_UNKNOWN']);
  t.equal(countRegistry2Requests(upstream, 'GET', '/manifests/nope'), 1, 'the upstream itself said 404');
});

t.test("a mirror's content is verified like the upstream's", { skip }, async (t) => {
  const upstream = await startRegistry2();
  t.teardown(() => upstream.stop());
  const image = makeImage({ seed: 173, layers: 1, layerSize: 64 * 1024 });
  await pushImageHttp(upstream.url, 'org/app', 'v1', image);
  const liar = await startLyingUpstream();
  t.teardown(() => liar.close());
  liar.manifests.set('org/app:v1', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType, behaviour: 'good' });
  liar.blobs.set(image.layers[0]!.digest, { bytes: image.layers[0]!.bytes, behaviour: 'wrong-bytes' });
  const s = await startStowage({ config: { upstreams: [{ name: 'up.test', url: upstream.url, mirrors: [{ url: liar.url }] }] } });
  t.teardown(() => s.stop());
  const base = `${s.url}/v2/up.test/org/app`;
  t.equal((await get(`${base}/manifests/v1`)).status, 200);
  const layer = image.layers[0]!;
  const got = await fetch(`${base}/blobs/${layer.digest}`).then(async (r) => sha256(Buffer.from(await r.arrayBuffer()))).catch(() => 'broken');
  t.not(got, layer.digest, 'wrong bytes from a mirror never reach a client whole');
  const hex = layer.digest.slice(7);
  t.notOk(existsSync(join(s.rootDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data')), 'nothing stored');
  t.ok((await metric(s, 'stowage_digest_mismatch_total')).some((l) => l.endsWith(' 1')), 'counted as a digest mismatch');
});

t.test('each endpoint sees only its own credentials', { skip }, async (t) => {
  const image = makeImage({ seed: 174, layers: 2, layerSize: 4096 });
  const a = await startLyingUpstream({ auth: { challenge: 'Basic realm="a"', accept: (h) => h === basic('mirror-a', 'pw-a') } });
  const c = await startLyingUpstream({ auth: { challenge: 'Basic realm="c"', accept: (h) => h === basic('up-c', 'pw-c') } });
  t.teardown(async () => { await a.close(); await c.close(); });
  c.manifests.set('org/app:v1', { bytes: image.manifest.bytes, mediaType: image.manifest.mediaType, behaviour: 'good' });
  for (const b of [image.config, ...image.layers]) c.blobs.set(b.digest, { bytes: b.bytes, behaviour: 'good' });
  a.blobs.set(image.layers[0]!.digest, { bytes: image.layers[0]!.bytes, behaviour: 'good' });
  const s = await startStowage({
    config: { upstreams: [{ name: 'up.test', url: c.url, username: 'up-c', password: 'pw-c', mirrors: [{ url: a.url, username: 'mirror-a', password: 'pw-a' }] }] },
  });
  t.teardown(() => s.stop());
  const base = `${s.url}/v2/up.test/org/app`;
  t.equal((await get(`${base}/manifests/v1`)).status, 200);
  for (const b of [image.config, ...image.layers]) t.equal(sha256((await get(`${base}/blobs/${b.digest}`)).body), b.digest);
  const values = (seen: Array<{ authorization: string | undefined }>) => [...new Set(seen.map((x) => x.authorization ?? 'none'))].sort();
  t.same(values(a.seen), [basic('mirror-a', 'pw-a'), 'none'], 'the mirror saw its own credentials only');
  t.same(values(c.seen), [basic('up-c', 'pw-c'), 'none'], 'the upstream saw its own credentials only');
  t.ok(a.seen.some((x) => x.status === 200 && x.path.includes(image.layers[0]!.digest)), 'the mirror served the layer it had');
  t.notMatch(s.output(), /pw-a|pw-c/, 'no password in the logs');
});
