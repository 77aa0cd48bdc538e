/**
 * The s3 driver against a real S3 API: OpenStack Swift's s3api on loopback (one Swift for this
 * file, a fresh rootdirectory per test), plus what only S3 has: multipart copy above the
 * threshold, aborted multipart uploads, presigned redirects, errors when the store is down.
 */
import { ListMultipartUploadsCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { DriverError } from '../../src/storage/driver.js';
import { S3Driver, type S3DriverOptions } from '../../src/storage/drivers/s3.js';
import { missingSwift, SINGLE_REPLICA_RACE, startSwift, SWIFT_KEY, SWIFT_REGION, SWIFT_USER, type SwiftServer } from '../helpers/swift.js';
import { driverConformance } from './conformance.js';

const skip = missingSwift();
const BUCKET = 'stowage-s3-conformance';

let swift: SwiftServer | undefined;
const drivers: S3Driver[] = [];

export function s3Options(s: SwiftServer, bucket: string, extra: Partial<S3DriverOptions> = {}): S3DriverOptions {
  return {
    bucket, region: SWIFT_REGION, regionEndpoint: s.url, forcePathStyle: true,
    accessKey: SWIFT_USER, secretKey: SWIFT_KEY,
    rootDirectory: `t-${randomBytes(4).toString('hex')}`,
    // Small enough that the tests cross every part and copy boundary.
    chunkSize: 5 * 1024 * 1024, multipartCopyChunkSize: 5 * 1024 * 1024, multipartCopyThresholdSize: 6 * 1024 * 1024,
    ...extra,
  };
}

if (skip) {
  t.test('s3 driver', { skip }, async () => undefined);
} else {
  t.before(async () => {
    swift = await startSwift();
    await swift.createContainer(BUCKET);
  });
  t.teardown(async () => {
    for (const d of drivers) await d.close();
    await swift?.stop();
  });
  const make = (extra: Partial<S3DriverOptions> = {}) => {
    const driver = new S3Driver(s3Options(swift!, BUCKET, extra));
    drivers.push(driver);
    return driver;
  };

  driverConformance(t, 's3', async () => {
    const driver = make();
    return { driver, cleanup: async () => { await driver.delete('/').catch(() => undefined); } };
  }, { readsWhileWriting: false, overwriteMayVanish: SINGLE_REPLICA_RACE });

  t.test('s3: a move above the threshold is a multipart copy', async (t) => {
    const d = make();
    const data = randomBytes(11 * 1024 * 1024);
    await d.putContent('/big/src', data);
    await d.move('/big/src', '/big/dst');
    const key = `${(d as unknown as { root: string }).root}/big/dst`;
    const head = await d.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    t.match(head.ETag, /-2"$/, `the destination is a 2-part multipart object (ETag ${head.ETag})`);
    t.ok((await d.getContent('/big/dst')).equals(data), 'bytes intact');

    await d.putContent('/small/src', Buffer.from('tiny'));
    await d.move('/small/src', '/small/dst');
    const small = await d.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${(d as unknown as { root: string }).root}/small/dst` }));
    t.notMatch(small.ETag, /-\d+"$/, 'below the threshold: a plain CopyObject');
  });

  t.test('s3: an abandoned multipart write is aborted by deleting its directory', async (t) => {
    const d = make();
    const root = (d as unknown as { root: string }).root;
    const w = await d.writer('/_uploads/u1/data');
    await new Promise<void>((r, j) => w.stream.write(randomBytes(6 * 1024 * 1024), (e) => (e ? j(e) : r())));
    const pending = async () => (await d.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${root}/` }))).Uploads ?? [];
    for (let i = 0; i < 100 && (await pending()).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    t.equal((await pending()).length, 1, 'one multipart upload in progress (a part was sent)');
    await d.putContent('/_uploads/u1/startedat', Buffer.from('now'));
    await d.delete('/_uploads/u1');
    t.equal((await pending()).length, 0, 'the multipart upload was aborted');
  });

  t.test('s3: presigned redirect URLs serve the bytes without credentials', async (t) => {
    const d = make();
    const data = randomBytes(100_000);
    await d.putContent('/r/blob', data);
    const url = await d.redirectURL('/r/blob', { method: 'GET' });
    t.match(url, /X-Amz-Signature=/);
    t.notMatch(url, new RegExp(SWIFT_KEY), 'the secret is not in the URL');
    const r = await fetch(url);
    t.equal(r.status, 200);
    t.ok(Buffer.from(await r.arrayBuffer()).equals(data), 'bytes from the store');
  });

  t.test('s3: a store that is down gives DriverError, not a hang; back up, it works again', async (t) => {
    const d = make();
    await d.putContent('/up/f', Buffer.from('x'));
    await swift!.stopProxy();
    try {
      const started = Date.now();
      await d.stat('/up/f').then(() => t.fail('stat succeeded with the store down'), (e: unknown) => {
        t.ok(e instanceof DriverError, `DriverError: ${(e as Error).message.slice(0, 80)}`);
      });
      t.ok(Date.now() - started < 30_000, 'gave up after its retries');
    } finally {
      await swift!.startProxy();
    }
    t.equal((await d.getContent('/up/f')).toString(), 'x');
  });
}
