/** The upstream client's pieces: challenge parsing, the circuit breaker, redirects and Basic auth over real sockets. */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { pino } from 'pino';
import { parseChallenges } from '../../src/upstream/auth.js';
import { UpstreamClient } from '../../src/upstream/client.js';
import { UpstreamError, toRegistryError } from '../../src/upstream/errors.js';
import { CircuitBreaker } from '../../src/upstream/health.js';
import type { UpstreamConfig } from '../../src/config/schema.js';

const cfg = (url: string, extra: Partial<UpstreamConfig> = {}): UpstreamConfig => ({
  name: 'u.test', url, tagTtlMs: 1000, negativeTtlMs: 0, revalidateTimeoutMs: 1000, connectTimeoutMs: 1000,
  headersTimeoutMs: 1000, bodyTimeoutMs: 1000, maxConcurrent: 4, contentTtlMs: 0, breakerFailures: 3, breakerCooldownMs: 1000, ...extra,
});
const DIGEST = `sha256:${'a'.repeat(64)}` as never;

t.test('challenge parsing', async (t) => {
  t.same(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"'),
    [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/ubuntu:pull' } }]);
  t.same(parseChallenges('Bearer realm="r",scope="repository:c:pull,push repository:a:pull"')[0]!.params.scope, 'repository:c:pull,push repository:a:pull',
    'quoted values keep commas and spaces');
  const two = parseChallenges('Basic realm="x, y", Bearer realm="z",service=s');
  t.same(two.map((c) => c.scheme), ['basic', 'bearer']);
  t.same(two[0]!.params, { realm: 'x, y' });
  t.same(two[1]!.params, { realm: 'z', service: 's' });
  t.same(parseChallenges('Bearer realm="a\\"b"')[0]!.params.realm, 'a"b', 'escaped quotes');
  t.same(parseChallenges(''), []);
});

t.test('circuit breaker', async (t) => {
  let now = 0;
  const b = new CircuitBreaker({ threshold: 2, cooldownMs: 100, maxCooldownMs: 400, now: () => now });
  t.equal(b.state(), 'closed');
  b.failure();
  t.ok(b.allow(), 'below the threshold');
  b.failure();
  t.equal(b.state(), 'open');
  t.notOk(b.allow(), 'open: refused');
  now = 100;
  t.equal(b.state(), 'half-open');
  t.ok(b.allow(), 'one probe');
  t.notOk(b.allow(), 'only one probe at a time');
  b.failure();
  now = 250;
  t.notOk(b.allow(), 'the failed probe doubled the cooldown');
  now = 300;
  t.ok(b.allow(), 'probe after the doubled cooldown');
  b.success();
  t.equal(b.state(), 'closed');
});

t.test('error mapping', async (t) => {
  const rl = toRegistryError(new UpstreamError('rate-limited', 'u', 'x', { retryAfter: 7 }));
  t.same([rl.status, rl.code, rl.headers['Retry-After']], [429, 'TOOMANYREQUESTS', '7']);
  t.same([toRegistryError(new UpstreamError('timeout', 'u', 'x')).status, toRegistryError(new UpstreamError('unavailable', 'u', 'x')).status,
    toRegistryError(new UpstreamError('circuit-open', 'u', 'x')).status, toRegistryError(new UpstreamError('unauthorized', 'u', 'x')).status], [504, 503, 503, 502]);
});

function server(handler: (url: string, headers: IncomingHttpHeaders, res: import('node:http').ServerResponse) => void) {
  const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  const s = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    handler(req.url ?? '', req.headers, res);
  });
  return new Promise<{ url: string; seen: typeof seen; close: () => Promise<void> }>((resolve) => {
    s.listen(0, '127.0.0.1', () => {
      resolve({ url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen, close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }) });
    });
  });
}

t.test('a redirect to another origin drops Authorization', async (t) => {
  const cdn = await server((_url, _h, res) => res.writeHead(200, { 'content-length': '4' }).end('blob'));
  const origin = await server((url, headers, res) => {
    if (!headers.authorization) return res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
    if (url.includes('/blobs/')) return res.writeHead(307, { location: `${cdn.url}/signed/blob?sig=1` }).end();
    res.writeHead(404).end();
  });
  t.teardown(async () => { await cdn.close(); await origin.close(); });
  const client = new UpstreamClient(cfg(origin.url, { username: 'u', password: 'p' }), { log: pino({ level: 'silent' }) });
  t.teardown(() => client.close());
  const res = await client.blob('r', DIGEST);
  t.equal(res.status, 200);
  const chunks: Buffer[] = [];
  for await (const c of res.body!) chunks.push(c as Buffer);
  t.equal(Buffer.concat(chunks).toString(), 'blob');
  t.match(origin.seen.at(-1)!.headers.authorization ?? '', /^Basic /, 'the upstream got the credentials');
  t.equal(cdn.seen.length, 1);
  t.equal(cdn.seen[0]!.headers.authorization, undefined, 'the CDN did not');
  await client.blob('r', DIGEST).then((r) => r.body?.resume());
  t.match(origin.seen.at(-1)!.headers.authorization ?? '', /^Basic /, 'Basic is sent up front once asked for');
  t.equal(origin.seen.filter((s) => !s.headers.authorization).length, 1, 'only the first request met the challenge');
});

t.test('failures are classified', async (t) => {
  const up = await server((url, _h, res) => {
    if (url.includes('500')) return res.writeHead(500).end();
    if (url.includes('429')) return res.writeHead(429, { 'retry-after': '9' }).end();
    if (url.includes('403')) return res.writeHead(403).end();
    if (url.includes('slow')) return setTimeout(() => res.writeHead(200).end(), 2000);
    res.writeHead(418).end();
  });
  t.teardown(() => up.close());
  const client = new UpstreamClient(cfg(up.url, { headersTimeoutMs: 300, breakerFailures: 100 }), { log: pino({ level: 'silent' }) });
  t.teardown(() => client.close());
  const kind = (repo: string) => client.manifest(repo, 'x', { method: 'GET', accept: [] }).then(() => 'ok', (e: UpstreamError) => `${e.kind}:${e.options.retryAfter ?? ''}`);
  t.equal(await kind('r500'), 'unavailable:');
  t.equal(await kind('r429'), 'rate-limited:9');
  t.equal(await kind('r403'), 'unauthorized:');
  t.equal(await kind('slow'), 'timeout:');
  t.equal(await kind('other'), 'bad-response:');
  const refused = new UpstreamClient(cfg('http://127.0.0.1:1'), { log: pino({ level: 'silent' }) });
  t.teardown(() => refused.close());
  t.equal(await refused.manifest('r', 'x', { method: 'GET', accept: [] }).then(() => 'ok', (e: UpstreamError) => e.kind), 'unavailable', 'connection refused');
});
