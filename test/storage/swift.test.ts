/**
 * The swift driver (native Swift API, auth v1.0) against a real Swift on loopback, plus what only
 * Swift has: Static Large Objects, moves that copy a manifest instead of bytes, the crash window
 * of such a move, temp-URL redirects, token refresh, errors when the store is down.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { DriverError, PathNotFoundError } from '../../src/storage/driver.js';
import { SwiftDriver, type SwiftDriverOptions } from '../../src/storage/drivers/swift.js';
import { missingSwift, SINGLE_REPLICA_RACE, startSwift, SWIFT_KEY, SWIFT_USER, type SwiftServer } from '../helpers/swift.js';
import { driverConformance } from './conformance.js';

const skip = missingSwift();
const CONTAINER = 'stowage-swift-conformance';
let swift: SwiftServer | undefined;
const drivers: SwiftDriver[] = [];

export function swiftOptions(s: SwiftServer, container: string, extra: Partial<SwiftDriverOptions> = {}): SwiftDriverOptions {
  return {
    authUrl: s.authUrl, username: SWIFT_USER, password: SWIFT_KEY, authVersion: 1, container,
    prefix: `t-${randomBytes(4).toString('hex')}`, chunkSize: 5 * 1024 * 1024, listPageSize: 1000, ...extra,
  };
}

const write = (w: { stream: NodeJS.WritableStream }, data: Buffer) =>
  new Promise<void>((resolve, reject) => w.stream.write(data, (e) => (e ? reject(e) : resolve())));

if (skip) {
  t.test('swift driver', { skip }, async () => undefined);
} else {
  t.before(async () => {
    swift = await startSwift();
    await swift.createContainer(CONTAINER);
  });
  t.teardown(async () => {
    for (const d of drivers) await d.close();
    await swift?.stop();
  });
  const make = (extra: Partial<SwiftDriverOptions> = {}) => {
    const d = new SwiftDriver(swiftOptions(swift!, CONTAINER, extra));
    drivers.push(d);
    return d;
  };

  driverConformance(t, 'swift', async () => {
    const driver = make();
    return { driver, cleanup: async () => { await driver.delete('/').catch(() => undefined); } };
  }, { readsWhileWriting: false, overwriteMayVanish: SINGLE_REPLICA_RACE });

  t.test('swift: a big file is a Static Large Object; a move copies the manifest, not the bytes', async (t) => {
    const d = make();
    const data = randomBytes(12 * 1024 * 1024);
    const w = await d.writer('/up/data');
    for (let i = 0; i < data.length; i += 1024 * 1024) await write(w, data.subarray(i, i + 1024 * 1024));
    await w.commit();
    await d.putContent('/up/startedat', Buffer.from('x'));
    t.equal((await d.head(d.key('/up/data')))?.slo, true, 'an SLO manifest');
    const segments = await d.manifestOf(d.key('/up/data'));
    t.equal(segments.length, 3, 'three segments (5 + 5 + 2 MiB)');
    await d.move('/up/data', '/blobs/x/data');
    t.same(await d.manifestOf(d.key('/blobs/x/data')), segments, 'the destination references the same segments');
    await d.delete('/up');
    t.ok((await d.getContent('/blobs/x/data')).equals(data), 'deleting the source directory left the moved segments alone');
    await d.delete('/blobs/x/data');
    t.same(await listAll(d, d.segmentDir('/')), [], 'deleting the destination deleted its segments and the move marker');
  });

  t.test('swift: a crash between the new manifest and deleting the old one loses nothing', async (t) => {
    const d = make();
    const data = randomBytes(11 * 1024 * 1024);
    const w = await d.writer('/_uploads/u/data');
    await write(w, data);
    await w.commit();
    // What move() does, stopped before its last step (the process died there).
    const segments = await d.manifestOf(d.key('/_uploads/u/data'));
    await d.put(`${d.segmentDir('/_uploads/u/data')}.moved`, Buffer.from(d.key('/blobs/y/data')));
    await d.putManifest(d.key('/blobs/y/data'), segments, { 'X-Object-Meta-Stowage-Moved-From': '/_uploads/u/data' });
    await d.delete('/_uploads/u'); // upload purging
    t.ok((await d.getContent('/blobs/y/data')).equals(data), 'the blob is whole');
  });

  t.test('swift: abandoned segments are deleted with their directory', async (t) => {
    const d = make();
    const w = await d.writer('/_uploads/v/data');
    await write(w, randomBytes(6 * 1024 * 1024)); // one segment written, never committed
    for (let i = 0; i < 100 && (await listAll(d, d.segmentDir('/_uploads/v'))).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    t.equal((await listAll(d, d.segmentDir('/_uploads/v'))).length, 1, 'one orphan segment');
    await d.putContent('/_uploads/v/startedat', Buffer.from('x'));
    await d.delete('/_uploads/v');
    t.same(await listAll(d, d.segmentDir('/_uploads/v')), [], 'gone');
  });

  t.test('swift: temp URLs serve the bytes without a token', async (t) => {
    const d = make({ secretKey: undefined });
    const data = randomBytes(30_000);
    await d.putContent('/r/blob', data);
    const url = await d.redirectURL('/r/blob', { method: 'GET' });
    t.ok(url, 'a temp URL (key read from the account metadata)');
    t.match(url!, /temp_url_sig=/);
    const r = await fetch(url!);
    t.equal(r.status, 200);
    t.ok(Buffer.from(await r.arrayBuffer()).equals(data));
    const bad = await fetch(url!.replace(/temp_url_sig=[0-9a-f]/, 'temp_url_sig=z'));
    await bad.arrayBuffer();
    t.equal(bad.status, 401, 'a forged signature is refused');
  });

  t.test('swift: an expired token is refreshed on 401', async (t) => {
    const d = make();
    await d.putContent('/tok/f', Buffer.from('x'));
    const session = await d.client.getSession();
    session.token = 'AUTH_tk-not-a-valid-token';
    t.equal((await d.getContent('/tok/f')).toString(), 'x', 'read after re-authenticating');
    t.not((await d.client.getSession()).token, 'AUTH_tk-not-a-valid-token', 'a new token');
  });

  t.test('swift: a store that is down gives DriverError; back up, it works again', async (t) => {
    const d = make();
    await d.putContent('/up/f', Buffer.from('x'));
    await swift!.stopProxy();
    try {
      await d.stat('/up/f').then(() => t.fail('stat succeeded with the store down'), (e: unknown) => {
        t.ok(e instanceof DriverError && !(e instanceof PathNotFoundError), `DriverError: ${(e as Error).message.slice(0, 80)}`);
        t.notMatch((e as Error).message, SWIFT_KEY, 'no credentials in the message');
      });
    } finally {
      await swift!.startProxy();
    }
    t.equal((await d.getContent('/up/f')).toString(), 'x');
  });
}

async function listAll(d: SwiftDriver, prefix: string): Promise<string[]> {
  const r = await d.call({ method: 'GET', query: { format: 'json', prefix } }, [200, 204]);
  if (r.status === 204) {
    await r.body.dump();
    return [];
  }
  return ((await r.body.json()) as Array<{ name: string }>).map((o) => o.name);
}
