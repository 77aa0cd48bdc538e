/**
 * The mirror chain over real sockets (node:http registries that fail in each way, a token
 * server): fall-through order, the last answer being final, a breaker per mirror, credentials that
 * never leave their endpoint, and token fetches that cost no extra round trip.
 */
import t, { type Test } from 'tap';
import { pino } from 'pino';
import type { MirrorConfig, UpstreamConfig } from '../../src/config/schema.js';
import { Metrics } from '../../src/metrics.js';
import { MirrorChain } from '../../src/upstream/chain.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import { startLyingUpstream, type LyingUpstream } from '../helpers/lying-upstream.js';
import { prngBytes, sha256 } from '../helpers/image.js';
import { startTokenServer } from '../helpers/token-server.js';
import { missingTools, startBlackhole } from '../helpers/tools.js';

const log = pino({ level: 'silent' });
const endpoint = (name: string, url: string, extra: Partial<MirrorConfig> = {}): MirrorConfig => ({
  name, url, connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, maxConcurrent: 4, breakerFailures: 3, breakerCooldownMs: 60_000, ...extra,
});
const upstream = (url: string, mirrors: MirrorConfig[], extra: Partial<UpstreamConfig> = {}): UpstreamConfig => ({
  ...endpoint('u.test', url), tagTtlMs: 1000, negativeTtlMs: 0, revalidateTimeoutMs: 1000, contentTtlMs: 0, mirrors, ...extra,
});
/** Port 1 on loopback: nothing listens there (a free port another process could take meanwhile). */
const REFUSED = 'http://127.0.0.1:1';
const host = (url: string) => new URL(url).host;
const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;

async function counter(metrics: Metrics, name: string): Promise<Record<string, number>> {
  const m = metrics.registry.getSingleMetric(name)!;
  const out: Record<string, number> = {};
  for (const v of (await m.get()).values) out[Object.values(v.labels).join(' ')] = v.value;
  return out;
}

async function body(res: { body: NodeJS.ReadableStream | null }): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of res.body ?? []) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function liar(t: Test, options: Parameters<typeof startLyingUpstream>[0] = {}): Promise<LyingUpstream> {
  const l = await startLyingUpstream(options);
  t.teardown(() => l.close());
  return l;
}

const BYTES = prngBytes(7, 4096);
const DIGEST = sha256(BYTES) as never;

t.test('falls through refused, 5xx, hung and 404, in order, to the first answer', async (t) => {
  const refused = REFUSED;
  const failing = await liar(t, { status: 500 });
  const hung = await startBlackhole();
  t.teardown(() => hung.close());
  const partial = await liar(t);
  const full = await liar(t);
  full.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'good' });
  const later = await liar(t);
  const metrics = new Metrics();
  const chain = new MirrorChain(upstream(later.url, [
    endpoint('u.test@refused', refused), endpoint('u.test@failing', failing.url), endpoint('u.test@hung', hung.url, { headersTimeoutMs: 300 }),
    endpoint('u.test@partial', partial.url), endpoint('u.test@full', full.url),
  ]), { log, metrics });
  t.teardown(() => chain.close());

  const started = Date.now();
  const res = await chain.blob('org/app', DIGEST);
  // undici's own 300 ms headers timeout fires after ~1 s (its coarse clock); the chain keeps the
  // deadline itself. The margin is wide: this is about the timeout honoured, not speed.
  t.ok(Date.now() - started < 900, `the hung mirror cost its 300 ms timeout, not undici's ~1 s (${Date.now() - started} ms for the whole chain)`);
  t.equal(res.status, 200);
  t.equal(res.servedBy, host(full.url), 'the response says which mirror served it');
  t.equal(sha256(await body(res)), DIGEST);
  t.same([failing.seen.length, hung.connections(), partial.seen.length, full.seen.length], [1, 1, 1, 1], 'each mirror asked once, in order');
  t.equal(later.seen.length, 0, 'nothing after the first answer is asked');
  t.same(await counter(metrics, 'stowage_upstream_fallthrough_total'), {
    [`u.test ${host(refused)} unavailable`]: 1, [`u.test ${host(failing.url)} unavailable`]: 1,
    [`u.test ${host(hung.url)} timeout`]: 1, [`u.test ${host(partial.url)} not-found`]: 1,
  }, 'each pass counted with its reason');
  t.same(await counter(metrics, 'stowage_upstream_served_total'), { [`u.test ${host(full.url)} blob`]: 1 });
});

t.test("the last endpoint's answer is final; a mirror's 404 never is", async (t) => {
  const a = await liar(t);
  const b = await liar(t);
  const chain = new MirrorChain(upstream(b.url, [endpoint('u.test@a', a.url)]), { log });
  t.teardown(() => chain.close());
  const res = await chain.manifest('org/app', 'missing', { method: 'GET', accept: [] });
  t.equal(res.status, 404, "the upstream's 404 is the answer");
  t.equal(res.servedBy, host(b.url));
  t.same([a.seen.length, b.seen.length], [1, 1]);

  const refused = REFUSED;
  const down = new MirrorChain(upstream(refused, [endpoint('u.test@a', a.url)]), { log });
  t.teardown(() => down.close());
  const err = await down.manifest('org/app', 'missing', { method: 'GET', accept: [] }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof UpstreamError && err.kind === 'unavailable' && err.upstream === 'u.test',
    'a mirror said 404 and the upstream is down: an outage (stale content may be served), not a 404');
});

t.test('each mirror has its own circuit breaker', async (t) => {
  const failing = await liar(t, { status: 503 });
  const good = await liar(t);
  good.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'good' });
  const chain = new MirrorChain(upstream(good.url, [endpoint('u.test@failing', failing.url, { breakerFailures: 2 })]), { log });
  t.teardown(() => chain.close());
  for (let i = 0; i < 6; i++) {
    const res = await chain.blob('org/app', DIGEST);
    t.equal(res.servedBy, host(good.url));
    await body(res);
  }
  t.equal(failing.seen.length, 2, 'after two failures the mirror is skipped without being contacted');
  t.same(chain.endpoints.map((e) => [e.name, e.breaker.state()]), [['u.test@failing', 'open'], ['u.test', 'closed']]);
  t.equal(good.seen.length, 6);
});

t.test("credentials never reach another endpoint, its token realm or a redirect's target", { skip: missingTools('openssl') }, async (t) => {
  const tokens = await startTokenServer({ users: { b: 'pw-b' } });
  t.teardown(() => tokens.close());
  const subject = (authorization: string) => JSON.parse(Buffer.from(authorization.split('.')[1]!, 'base64url').toString()).sub as string;
  // B: Bearer auth through its token server; has the blob.
  const b = await liar(t, {
    auth: { challenge: `Bearer realm="${tokens.realm}",service="${tokens.service}"`, accept: (h) => !!h?.startsWith('Bearer ') && subject(h) === 'b' },
  });
  b.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'good' });
  // A: Basic auth; lacks the manifest; redirects blob requests to B's origin.
  const a = await liar(t, { auth: { challenge: 'Basic realm="a"', accept: (h) => h === basic('a', 'pw-a') }, redirectTo: b.url });
  a.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'redirect' });
  // C, the upstream itself: Basic auth; has the manifest.
  const c = await liar(t, { auth: { challenge: 'Basic realm="c"', accept: (h) => h === basic('c', 'pw-c') } });
  c.publishImage('org/app', 'v1', [{ digest: DIGEST, size: BYTES.length }]);
  const chain = new MirrorChain(upstream(c.url, [
    endpoint('u.test@a', a.url, { username: 'a', password: 'pw-a' }),
    endpoint('u.test@b', b.url, { username: 'b', password: 'pw-b' }),
  ], { username: 'c', password: 'pw-c' }), { log });
  t.teardown(() => chain.close());

  const manifest = await chain.manifest('org/app', 'v1', { method: 'GET', accept: [] });
  t.equal(manifest.status, 200);
  t.equal(manifest.servedBy, host(c.url), 'A and B lack the manifest: C serves it');
  await body(manifest);
  const blob = await chain.blob('org/app', DIGEST);
  t.equal(blob.servedBy, host(b.url), "A's redirect to B is refused there without credentials; B itself serves the blob");
  t.equal(sha256(await body(blob)), DIGEST);

  const values = (l: LyingUpstream) => [...new Set(l.seen.map((s) => s.authorization ?? 'none'))].sort();
  t.same(values(a), [basic('a', 'pw-a'), 'none'], 'A saw only its own credentials');
  t.same(values(c), [basic('c', 'pw-c'), 'none'], 'C saw only its own credentials');
  t.ok(b.seen.some((s) => s.authorization?.startsWith('Bearer ')), 'B got its token');
  t.ok(b.seen.every((s) => s.authorization === undefined || (s.authorization.startsWith('Bearer ') && subject(s.authorization) === 'b')),
    "B saw only tokens issued to B: no Basic credentials of A or C, not on A's redirect either");
  t.ok(b.seen.some((s) => s.authorization === undefined && s.status === 401 && s.path.includes('/blobs/')), "A's redirect reached B without Authorization");
  t.same([...new Set(tokens.accounts)], ['b'], "B's token realm saw B's account only");
});

t.test("a new scope's token comes before its first request; concurrent requests share one fetch", { skip: missingTools('openssl') }, async (t) => {
  const tokens = await startTokenServer();
  t.teardown(() => tokens.close());
  const up = await liar(t, { auth: { challenge: `Bearer realm="${tokens.realm}",service="${tokens.service}"`, accept: (h) => !!h?.startsWith('Bearer ') } });
  up.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'good' });
  const chain = new MirrorChain(upstream(up.url, []), { log });
  t.teardown(() => chain.close());
  await body(await chain.blob('first/repo', DIGEST));
  t.equal(up.seen.filter((s) => s.status === 401).length, 1, 'the first request meets the challenge');
  const all = await Promise.all(Array.from({ length: 5 }, () => chain.blob('second/repo', DIGEST)));
  for (const r of all) t.equal(sha256(await body(r)), DIGEST);
  t.equal(up.seen.filter((s) => s.status === 401).length, 1, 'a new repository costs no 401: its token was fetched up front');
  t.same(tokens.requests, ['repository:first/repo:pull', 'repository:second/repo:pull'], 'one token fetch per scope, shared by concurrent requests');
  t.ok(up.connections() <= 4, `connections reused (${up.connections()} for ${up.seen.length} requests, max_concurrent 4)`);
});

t.test("once a mirror's cooldown is over it is probed beside the requests, which do not wait for it", async (t) => {
  let clock = 0;
  const hung = await startBlackhole();
  t.teardown(() => hung.close());
  const flaky = await liar(t);
  flaky.blobs.set(DIGEST, { bytes: BYTES, behaviour: '500' });
  const good = await liar(t);
  good.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'good' });
  const chain = new MirrorChain(upstream(good.url, [
    endpoint('u.test@hung', hung.url, { headersTimeoutMs: 2000, breakerFailures: 1, breakerCooldownMs: 1000 }),
    endpoint('u.test@flaky', flaky.url, { breakerFailures: 1, breakerCooldownMs: 1000 }),
  ]), { log, breaker: { now: () => clock } });
  t.teardown(() => chain.close());
  const [hungBreaker, flakyBreaker] = chain.endpoints.map((e) => e.breaker);

  t.equal((await chain.blob('org/app', DIGEST)).servedBy, host(good.url), 'the hung mirror costs its timeout once, the flaky one fails');
  t.same([hungBreaker!.state(), flakyBreaker!.state()], ['open', 'open']);
  flaky.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'good' });
  clock += 1000;
  const res = await chain.blob('org/app', DIGEST);
  t.equal(res.servedBy, host(good.url), 'half-open mirrors are not asked for content: the request goes on at once');
  await body(res);
  t.equal(hungBreaker!.state(), 'half-open', "the hung mirror's probe is still waiting for its timeout: the request did not");
  t.equal(hung.connections(), 2, 'the hung mirror got its probe');
  t.equal(flaky.seen.at(-1)!.path, '/v2/', 'the flaky mirror got a GET /v2/ probe');
  while (hungBreaker!.state() === 'half-open' || flakyBreaker!.state() !== 'closed') await new Promise((r) => setTimeout(r, 50));
  t.equal(flakyBreaker!.state(), 'closed', 'the flaky mirror answered its probe: closed');
  t.equal(hungBreaker!.state(), 'open', 'the hung one did not: open again, for a doubled cooldown');
  const again = await chain.blob('org/app', DIGEST);
  t.equal(again.servedBy, host(flaky.url), 'the recovered mirror serves again');
  await body(again);
});

t.test('a mirror caught serving bad content is skipped (the proxy calls distrust on a digest mismatch)', async (t) => {
  const lying = await liar(t);
  lying.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'wrong-bytes' });
  const good = await liar(t);
  good.blobs.set(DIGEST, { bytes: BYTES, behaviour: 'good' });
  const metrics = new Metrics();
  const chain = new MirrorChain(upstream(good.url, [endpoint('u.test@lying', lying.url, { breakerFailures: 3 })]), { log, metrics });
  t.teardown(() => chain.close());
  const first = await chain.blob('org/app', DIGEST);
  t.equal(first.servedBy, host(lying.url));
  t.not(sha256(await body(first)), DIGEST, 'the mirror lied');
  chain.distrust(first.servedBy, 'digest mismatch');
  t.equal(chain.endpoints[0]!.breaker.state(), 'open', 'one mismatch opens its breaker, whatever failures says');
  const next = await chain.blob('org/app', DIGEST);
  t.equal(next.servedBy, host(good.url), 'the next request goes past it');
  t.equal(sha256(await body(next)), DIGEST);
  chain.distrust(next.servedBy, 'digest mismatch');
  t.equal(chain.endpoints[1]!.breaker.state(), 'closed', "the upstream's own URL is never skipped: nothing comes after it");
  t.same(await counter(metrics, 'stowage_upstream_fallthrough_total'), {
    [`u.test ${host(lying.url)} distrusted`]: 1, [`u.test ${host(lying.url)} circuit-open`]: 1,
  });
});
