/**
 * The azure driver against Azurite (Microsoft's emulator, started here on a free port), plus
 * what only Azure has: appends that extend the block list instead of copying, SAS redirects,
 * errors when the store is down.
 */
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { DriverError } from '../../src/storage/driver.js';
import { AzureDriver, type AzureDriverOptions } from '../../src/storage/drivers/azure.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type AzuriteServer } from '../helpers/azurite.js';
import { driverConformance } from './conformance.js';

const CONTAINER = 'stowage-conformance';
let azurite: AzuriteServer | undefined;

export function azureOptions(a: AzuriteServer, container: string, extra: Partial<AzureDriverOptions> = {}): AzureDriverOptions {
  return {
    accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, container, serviceUrl: a.serviceUrl,
    rootDirectory: `t-${randomBytes(4).toString('hex')}`, chunkSize: 1024 * 1024, listPageSize: 1000, ...extra,
  };
}

t.before(async () => {
  azurite = await startAzurite();
  const service = new BlobServiceClient(azurite.serviceUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  await service.getContainerClient(CONTAINER).create();
});
t.teardown(async () => azurite?.stop());

const make = (extra: Partial<AzureDriverOptions> = {}) => new AzureDriver(azureOptions(azurite!, CONTAINER, extra));

driverConformance(t, 'azure', async () => {
  const driver = make();
  return { driver, cleanup: async () => { await driver.delete('/').catch(() => undefined); } };
}, { readsWhileWriting: false });

t.test('azure: an append commits the old blocks plus the new ones', async (t) => {
  const d = make();
  const w = await d.writer('/a/data');
  const first = randomBytes(2 * 1024 * 1024 + 1);
  await new Promise<void>((r) => w.stream.write(first, () => r()));
  await w.commit();
  const a = await d.writer('/a/data', { append: true });
  await new Promise<void>((r) => a.stream.write(Buffer.from('more'), () => r()));
  await a.commit();
  const blob = new BlobServiceClient(azurite!.serviceUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY))
    .getContainerClient(CONTAINER).getBlockBlobClient(`${(d as unknown as { root: string }).root}/a/data`);
  const blocks = (await blob.getBlockList('committed')).committedBlocks ?? [];
  t.same(blocks.map((b) => b.size), [2 * 1024 * 1024 + 1, 4], 'the old block kept, one new block: nothing copied');
  t.ok((await d.getContent('/a/data')).equals(Buffer.concat([first, Buffer.from('more')])));
});

t.test('azure: SAS redirect URLs serve the bytes without the account key', async (t) => {
  const d = make();
  const data = randomBytes(50_000);
  await d.putContent('/r/blob', data);
  const url = await d.redirectURL('/r/blob', { method: 'GET' });
  t.match(url, /sig=/);
  t.notMatch(url, new RegExp(encodeURIComponent(AZURITE_KEY)), 'the key is not in the URL');
  const r = await fetch(url);
  t.equal(r.status, 200);
  t.ok(Buffer.from(await r.arrayBuffer()).equals(data));
});

t.test('azure: a store that is down gives DriverError; back up, it works again', async (t) => {
  const d = make();
  await d.putContent('/up/f', Buffer.from('x'));
  await azurite!.pause();
  try {
    await d.stat('/up/f').then(() => t.fail('stat succeeded with the store down'), (e: unknown) => {
      t.ok(e instanceof DriverError, `DriverError: ${(e as Error).message.slice(0, 80)}`);
    });
  } finally {
    await azurite!.start();
  }
  t.equal((await d.getContent('/up/f')).toString(), 'x');
});
