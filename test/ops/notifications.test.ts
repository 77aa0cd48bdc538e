/**
 * Notifications, end to end: stowage (dist/cli.js) with three webhook endpoints, a receiver that
 * is its own process (test/helpers/webhook-receiver.mjs) and Debian's registry:2 as the upstream.
 * Pushes, pulls (local and through the cache), a mount, fetches and deletes arrive with
 * registry:2's fields, in the order they happened; an endpoint that ignores pulls and blobs gets
 * the rest; an endpoint nobody listens on keeps only its newest `maxpending` events and counts the
 * dropped ones. Then the receiver goes down, stowage records events, restarts, records more, and
 * when the receiver is back every event arrives, in order, none twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { makeImage, pushBlobHttp, pushImageHttp, sha256, type Image } from '../helpers/image.js';
import { childEnv, startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { freePort, missingTools, sleep } from '../helpers/tools.js';

const skip = missingTools('docker-registry');
const RECEIVER = resolve(import.meta.dirname, '../helpers/webhook-receiver.mjs');
const EVENTS_TYPE = 'application/vnd.docker.distribution.events.v1+json';
const OCTET = 'application/octet-stream';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Delivery { method: string; url: string; headers: Record<string, string>; body: { events: Ev[] } }
interface Ev {
  id: string; timestamp: string; action: string;
  target: { mediaType?: string; size?: number; digest?: string; length?: number; repository: string; fromRepository?: string; url?: string; tag?: string; references?: Array<{ digest: string }> };
  request?: { id: string; addr: string; host: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
  stowage?: { cache?: string; upstream?: string };
}

async function startReceiver(port: number, file: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [RECEIVER, String(port), file], { env: childEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolveStart, reject) => {
    p.stdout!.once('data', () => resolveStart());
    p.once('exit', (code) => reject(new Error(`receiver exited ${code}`)));
  });
  return p;
}
const stopProc = (p: ChildProcess) => new Promise<void>((r) => { if (p.exitCode !== null) return r(); p.once('exit', () => r()); p.kill('SIGTERM'); });

const deliveries = (file: string): Delivery[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Delivery) : []);
const eventsAt = (file: string, path: string): Ev[] => deliveries(file).filter((d) => d.url === path).flatMap((d) => d.body.events);

/** action repository digest-or-tag: what the order checks compare. */
const key = (e: Ev) => `${e.action} ${e.target.repository} ${e.target.tag ?? e.target.digest ?? ''}`;

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const metric = async (s: Proc, name: string, endpoint: string): Promise<number> => {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{endpoint="${endpoint}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

/** The push events pushImageHttp causes, in order: layers, config, manifest (with its tag). */
const pushed = (repo: string, img: Image, tag: string): string[] => [
  ...img.layers.map((l) => `push ${repo} ${l.digest}`), `push ${repo} ${img.config.digest}`, `push ${repo} ${tag}`,
];

t.test('notifications', { skip, timeout: 240_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-notify-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const hookFile = join(work, 'received.jsonl');
  const port = await freePort();
  const deadPort = await freePort();
  let receiver = await startReceiver(port, hookFile);
  t.teardown(() => stopProc(receiver));

  // The upstream, with an image stowage will fetch.
  const r2 = await startRegistry2();
  t.teardown(() => r2.stop());
  const upImage = makeImage({ seed: 501, layers: 1, layerSize: 4096 });
  await pushImageHttp(r2.url, 'lib/img', 'v1', upImage);

  const config = {
    // Fetch events in the order client requests cause them (prefetch would fetch the config too, at once).
    upstreams: [{ name: 'upstream.test', url: r2.url, prefetch: { enabled: false } }],
    notifications: {
      events: { includereferences: true },
      endpoints: [
        { name: 'hook', url: `http://127.0.0.1:${port}/events`, headers: { Authorization: ['Bearer t0ken'] }, timeout: '5s', threshold: 2, backoff: '200ms' },
        { name: 'audit', url: `http://127.0.0.1:${port}/audit`, ignore: { actions: ['pull'] }, ignoredmediatypes: [OCTET], threshold: 2, backoff: '200ms' },
        { name: 'dead', url: `http://127.0.0.1:${deadPort}/nobody`, maxpending: 3, threshold: 1, backoff: '10s' },
      ],
    },
  };
  let s = await startStowage({ config });
  t.teardown(() => s.kill9());
  const rootDir = s.rootDir;

  const img = makeImage({ seed: 502, layers: 2, layerSize: 2000 });
  const [l1, l2] = img.layers as [Image['layers'][0], Image['layers'][0]];
  const upLayer = upImage.layers[0]!;
  const get = async (path: string, accept?: string) => {
    const r = await fetch(`${s.url}${path}`, { headers: { ...(accept ? { accept } : {}), 'user-agent': 'notify-test/1.0' } });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`);
    return r;
  };
  const del = async (path: string) => {
    const r = await fetch(`${s.url}${path}`, { method: 'DELETE' });
    if (r.status !== 202) throw new Error(`DELETE ${path}: ${r.status}`);
  };

  await t.test('every kind of event arrives with registry:2\'s fields, in order', async (t) => {
    await pushImageHttp(s.url, 'team/app', '1.0', img);
    await get('/v2/team/app/manifests/1.0', img.manifest.mediaType);
    await get(`/v2/team/app/blobs/${l1.digest}`);
    const mount = await fetch(`${s.url}/v2/team/other/blobs/uploads/?mount=${l1.digest}&from=team/app`, { method: 'POST' });
    t.equal(mount.status, 201, 'mounted');
    await get('/v2/upstream.test/lib/img/manifests/v1', upImage.manifest.mediaType);
    await get(`/v2/upstream.test/lib/img/blobs/${upLayer.digest}`);
    // The client has every byte once the digest verifies; the commit (and its fetch event) follows.
    await until('the blob committed', () => s.logs().some((l) => l.msg === 'blob cached' && l.digest === upLayer.digest));
    await get(`/v2/upstream.test/lib/img/blobs/${upLayer.digest}`);
    await del('/v2/team/app/manifests/1.0');
    await del(`/v2/team/app/manifests/${img.manifest.digest}`);
    await del(`/v2/team/app/blobs/${l2.digest}`);

    const expected = [
      ...pushed('team/app', img, '1.0'),
      'pull team/app 1.0',
      `pull team/app ${l1.digest}`,
      `mount team/other ${l1.digest}`,
      'fetch upstream.test/lib/img v1',
      'pull upstream.test/lib/img v1',
      `pull upstream.test/lib/img ${upLayer.digest}`,
      `fetch upstream.test/lib/img ${upLayer.digest}`,
      `pull upstream.test/lib/img ${upLayer.digest}`,
      'delete team/app 1.0',
      `delete team/app ${img.manifest.digest}`,
      `delete team/app ${l2.digest}`,
    ];
    await until('the events', () => eventsAt(hookFile, '/events').length >= expected.length);
    const events = eventsAt(hookFile, '/events');
    t.same(events.map(key), expected, 'push, pull, mount, fetch and delete events, in the order they happened');

    const d = deliveries(hookFile).find((x) => x.url === '/events')!;
    t.equal(d.method, 'POST');
    t.equal(d.headers['content-type'], EVENTS_TYPE, 'registry:2\'s envelope media type');
    t.equal(d.headers.authorization, 'Bearer t0ken', 'the configured headers');
    for (const e of events) {
      t.match(e, {
        id: UUID, action: String, target: { repository: String },
        request: { id: UUID, addr: /^127\.0\.0\.1:\d+$/, host: `127.0.0.1:${s.port}`, method: /^(GET|PUT|POST|DELETE)$/ },
        actor: {}, source: { addr: new RegExp(`:${s.port}$`), instanceID: UUID },
      }, `${key(e)}: id, request, actor, source`);
      t.ok(Date.parse(e.timestamp) > Date.now() - 600_000, 'a timestamp');
    }
    t.equal(new Set(events.map((e) => e.id)).size, events.length, 'every id once');
    t.equal(new Set(events.map((e) => e.source.instanceID)).size, 1, 'one instance');

    const manifestPush = events[3]!;
    t.same(manifestPush.target, {
      mediaType: img.manifest.mediaType, size: img.manifest.bytes.length, digest: img.manifest.digest, length: img.manifest.bytes.length,
      repository: 'team/app', url: `${s.url}/v2/team/app/manifests/${img.manifest.digest}`, tag: '1.0',
      references: [img.config, ...img.layers].map((b) => ({ mediaType: mediaTypeIn(img, b.digest), digest: b.digest, size: b.bytes.length })),
    }, 'manifest push: registry:2\'s target, references included (events.includereferences)');
    t.equal(manifestPush.request!.method, 'PUT');
    t.same(events[0]!.target, { mediaType: OCTET, size: l1.bytes.length, digest: l1.digest, length: l1.bytes.length, repository: 'team/app', url: `${s.url}/v2/team/app/blobs/${l1.digest}` }, 'blob push target');
    t.match(events[4], { target: { tag: '1.0', digest: img.manifest.digest }, request: { method: 'GET', useragent: 'notify-test/1.0' }, stowage: { cache: 'local' } }, 'a local pull says so');
    t.match(events[6], { target: { repository: 'team/other', fromRepository: 'team/app', digest: l1.digest, size: l1.bytes.length } }, 'mount: fromRepository');
    t.match(events[7], { action: 'fetch', target: { digest: upImage.manifest.digest, tag: 'v1' }, stowage: { upstream: 'upstream.test' } }, 'fetch of a manifest from the upstream (stowage\'s own action)');
    t.match(events[8], { action: 'pull', stowage: { cache: 'miss', upstream: 'upstream.test' } }, 'the pull it answered, a cache miss');
    t.match(events[9], { action: 'pull', target: { size: upLayer.bytes.length }, stowage: { cache: 'miss', upstream: 'upstream.test' } });
    t.match(events[10], { action: 'fetch', target: { digest: upLayer.digest, size: upLayer.bytes.length, url: `${s.url}/v2/upstream.test/lib/img/blobs/${upLayer.digest}` }, stowage: { upstream: 'upstream.test' } }, 'fetch of a blob');
    t.match(events[11], { action: 'pull', stowage: { cache: 'hit', upstream: 'upstream.test' } }, 'then a cache hit');
    t.same(events[12]!.target, { repository: 'team/app', tag: '1.0' }, 'tag delete: repository and tag');
    t.same(events[13]!.target, { repository: 'team/app', digest: img.manifest.digest }, 'manifest delete: repository and digest');

    await until('the audit endpoint', () => eventsAt(hookFile, '/audit').length >= 5);
    t.same(eventsAt(hookFile, '/audit').map(key), [
      'push team/app 1.0', 'fetch upstream.test/lib/img v1', 'delete team/app 1.0', `delete team/app ${img.manifest.digest}`, `delete team/app ${l2.digest}`,
    ], 'ignore.actions [pull] and ignoredmediatypes [application/octet-stream] filter per endpoint');

    t.equal(await metric(s, 'stowage_notifications_pending', 'dead'), 3, 'the unreachable endpoint keeps maxpending (3) events');
    t.equal(await metric(s, 'stowage_notifications_dropped', 'dead'), expected.length - 3, 'and counts the dropped ones');
    t.ok(s.logs().some((l) => l.msg === 'notification outbox full: oldest undelivered events dropped' && l.endpoint === 'dead'), 'logged');
    t.ok(await metric(s, 'stowage_notifications_failed_total', 'dead') >= 1, 'failed deliveries counted');
    t.equal(await metric(s, 'stowage_notifications_delivered_total', 'hook'), expected.length, 'delivered counted');
    t.equal(await metric(s, 'stowage_notifications_pending', 'hook'), 0, 'nothing pending for the receiver');
  });

  await t.test('receiver down, stowage restarted: every event arrives afterwards, in order, once', async (t) => {
    const before = eventsAt(hookFile, '/events').length;
    await stopProc(receiver);
    const two = makeImage({ seed: 503, layers: 1, layerSize: 1500 });
    const three = makeImage({ seed: 504, layers: 2, layerSize: 1500 });
    await pushImageHttp(s.url, 'team/two', '1', two);
    await until('failed deliveries', async () => await metric(s, 'stowage_notifications_failed_total', 'hook') >= 2);
    t.pass('deliveries fail while the receiver is down');
    t.equal(await metric(s, 'stowage_notifications_pending', 'hook'), 3, 'the events wait in the outbox');

    s.proc.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => s.proc.once('exit', (c) => r(c)));
    t.equal(code, 0, 'stowage stopped (exit 0) with events undelivered');
    t.ok(s.logs().some((l) => l.msg === 'undelivered events kept in the outbox for the next start'), 'and said so');

    s = await startStowage({ rootDir, config, port: s.port });
    t.equal(await metric(s, 'stowage_notifications_pending', 'hook'), 3, 'after the restart they are still pending');
    await pushImageHttp(s.url, 'team/three', '1', three);
    const extra = Buffer.from('{"x":1}');
    await pushBlobHttp(s.url, 'team/three', { bytes: extra, digest: sha256(extra) });

    receiver = await startReceiver(port, hookFile);
    const expected = [...pushed('team/two', two, '1'), ...pushed('team/three', three, '1'), `push team/three ${sha256(extra)}`];
    await until('the backlog', () => eventsAt(hookFile, '/events').length >= before + expected.length, 60_000);
    await sleep(500); // anything sent twice would arrive now
    const all = eventsAt(hookFile, '/events');
    t.same(all.slice(before).map(key), expected, 'the events recorded while the receiver was down, before and after the restart, in order');
    t.equal(new Set(all.map((e) => e.id)).size, all.length, 'no event arrived twice');
    t.equal(new Set(all.slice(before).map((e) => e.source.instanceID)).size, 2, 'recorded by two instances (before and after the restart)');
    await until('the outbox drained', async () => await metric(s, 'stowage_notifications_pending', 'hook') === 0);
    t.pass('nothing pending');
  });

  await t.test('killed (-9) with events undelivered: they arrive after the restart', async (t) => {
    const before = eventsAt(hookFile, '/events').length;
    await stopProc(receiver);
    const four = makeImage({ seed: 505, layers: 1, layerSize: 1200 });
    await pushImageHttp(s.url, 'team/four', '1', four);
    await s.kill9();
    s = await startStowage({ rootDir, config, port: s.port });
    receiver = await startReceiver(port, hookFile);
    await until('the events', () => eventsAt(hookFile, '/events').length >= before + 3);
    await sleep(300);
    const all = eventsAt(hookFile, '/events');
    t.same(all.slice(before).map(key), pushed('team/four', four, '1'), 'every event committed before the crash, in order');
    t.equal(new Set(all.map((e) => e.id)).size, all.length, 'none twice');
    await s.stop();
  });

  await t.test('the authenticated user is the actor', async (t) => {
    const htpasswd = join(work, 'htpasswd');
    writeFileSync(htpasswd, `alice:${bcrypt.hashSync('wonderland', 4)}\n`);
    const authed = await startStowage({
      config: {
        auth: { htpasswd: { realm: 'stowage', path: htpasswd } },
        notifications: { endpoints: [{ name: 'hook', url: `http://127.0.0.1:${port}/authed`, backoff: '200ms' }] },
      },
    });
    t.teardown(() => authed.stop());
    const blob = Buffer.from('actor test');
    const r = await fetch(`${authed.url}/v2/team/app/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST', body: blob, headers: { authorization: `Basic ${Buffer.from('alice:wonderland').toString('base64')}`, 'content-type': OCTET },
    });
    t.equal(r.status, 201, 'pushed as alice');
    await until('the event', () => eventsAt(hookFile, '/authed').length >= 1);
    t.same(eventsAt(hookFile, '/authed').map((e) => [e.action, e.actor]), [['push', { name: 'alice' }]], 'actor.name is the htpasswd user');
  });
});

/** The media type the manifest gives a descriptor (config or layer) with this digest. */
function mediaTypeIn(img: Image, digest: string): string {
  const m = JSON.parse(img.manifest.bytes.toString()) as { config: { digest: string; mediaType: string }; layers: Array<{ digest: string; mediaType: string }> };
  return [m.config, ...m.layers].find((d) => d.digest === digest)!.mediaType;
}
