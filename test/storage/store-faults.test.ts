/**
 * A store answering 5xx: an HTTP proxy in front of the real store (Swift for s3 and swift,
 * Azurite for azure) fails requests on command. A few failures are retried away with backoff;
 * a store that keeps failing gives DriverError (503 UNAVAILABLE to clients), and a write that
 * failed leaves nothing visible.
 */
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { DriverError, PathNotFoundError, type StorageDriver } from '../../src/storage/driver.js';
import { AzureDriver } from '../../src/storage/drivers/azure.js';
import { S3Driver } from '../../src/storage/drivers/s3.js';
import { SwiftDriver } from '../../src/storage/drivers/swift.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../helpers/azurite.js';
import { missingStore, startObjectStore } from '../helpers/object-stores.js';
import { SWIFT_KEY, SWIFT_REGION, SWIFT_USER } from '../helpers/swift.js';

interface FaultProxy { url: string; port: number; failNext(n: number): void; failAlways(on: boolean): void; failed(): number; close(): Promise<void> }

/** Forwards to `target` (http://host:port); answers 503 while told to. */
async function faultProxy(target: string): Promise<FaultProxy> {
  const to = new URL(target);
  let next = 0;
  let always = false;
  let failed = 0;
  const server: Server = createServer((req, res) => {
    // Auth requests pass, so the failures hit storage operations.
    const isAuth = req.url?.startsWith('/auth/');
    if (!isAuth && (always || next > 0)) {
      if (next > 0) next--;
      failed++;
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '0' }).end('injected failure');
      return;
    }
    const out = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`, port,
    failNext: (n) => { next = n; },
    failAlways: (on) => { always = on; },
    failed: () => failed,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

async function scenario(t: Test, d: StorageDriver, proxy: FaultProxy): Promise<void> {
  await d.putContent('/f/a', Buffer.from('one'));
  proxy.failNext(2);
  t.equal((await d.getContent('/f/a')).toString(), 'one', 'two 503s in a row are retried away');
  t.equal(proxy.failed(), 2, 'both failures were seen');
  proxy.failNext(2);
  await d.putContent('/f/b', Buffer.from('two'));
  t.equal((await d.getContent('/f/b')).toString(), 'two', 'a write retried after 503s');
  proxy.failAlways(true);
  await d.getContent('/f/a').then(() => t.fail('read succeeded through a failing store'), (e: unknown) => {
    t.ok(e instanceof DriverError && !(e instanceof PathNotFoundError), `a store that keeps failing: DriverError (${(e as Error).message.slice(0, 60)})`);
  });
  const w = await d.writer('/f/c').catch((e: unknown) => e as Error);
  if (!(w instanceof Error)) {
    await new Promise<void>((r) => w.stream.write(Buffer.from('lost'), () => r()));
    await w.commit().then(() => t.fail('commit succeeded through a failing store'), (e: unknown) => {
      t.ok(e instanceof DriverError, 'a commit through a failing store: DriverError');
    });
  }
  proxy.failAlways(false);
  await d.stat('/f/c').then(() => t.fail('the failed write is visible'), (e: unknown) => t.ok(e instanceof PathNotFoundError, 'the failed write left nothing'));
}

for (const kind of ['s3', 'swift'] as const) {
  t.test(`${kind}: 5xx from the store`, { skip: missingStore(kind) }, async (t) => {
    const store = await startObjectStore(kind);
    t.teardown(() => store.stop());
    const bucket = await store.bucket();
    const section = Object.values(bucket.section)[0] as Record<string, string>;
    const proxy = await faultProxy(new URL(section.regionendpoint ?? section.authurl!).origin);
    t.teardown(() => proxy.close());
    const d = kind === 's3'
      ? new S3Driver({ bucket: section.bucket!, region: SWIFT_REGION, regionEndpoint: proxy.url, forcePathStyle: true, accessKey: SWIFT_USER, secretKey: SWIFT_KEY })
      : new SwiftDriver({ authUrl: `${proxy.url}/auth/v1.0`, username: SWIFT_USER, password: SWIFT_KEY, authVersion: 1, container: section.container! });
    t.teardown(() => d.close());
    // Swift's auth hands out its own storage URL: point the client at the proxy instead.
    if (d instanceof SwiftDriver) {
      const s = await d.client.getSession();
      s.storageUrl = s.storageUrl.replace(/^http:\/\/[^/]+/, proxy.url);
    }
    await scenario(t, d, proxy);
  });
}

t.test('azure: 5xx from the store', async (t) => {
  const azurite = await startAzurite();
  t.teardown(() => azurite.stop());
  const proxy = await faultProxy(new URL(azurite.serviceUrl).origin);
  t.teardown(() => proxy.close());
  const d = new AzureDriver({ accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, container: 'faults', serviceUrl: `${proxy.url}/${AZURITE_ACCOUNT}` });
  await new BlobServiceClient(azurite.serviceUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient('faults').create();
  await scenario(t, d, proxy);
});
