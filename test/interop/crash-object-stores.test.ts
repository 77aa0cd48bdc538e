/**
 * The kill -9 crash scenario (test/helpers/crash.ts) on each object-store driver: s3 (Swift's S3
 * API), azure (Azurite), swift. Then upload purging clears what the killed uploads left in the
 * store (incomplete multipart uploads, orphan segments, sessions).
 */
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { isPathNotFound } from '../../src/storage/driver.js';
import type { S3Driver } from '../../src/storage/drivers/s3.js';
import type { SwiftDriver } from '../../src/storage/drivers/swift.js';
import { crashRounds } from '../helpers/crash.js';
import { missingStore, startObjectStore, type StoreBucket, type StoreKind } from '../helpers/object-stores.js';
import { startStowage } from '../helpers/procs.js';
import { sleep } from '../helpers/tools.js';
import { corruptBlobs } from './object-store-scenarios.js';

// Three stores, three kill rounds each and a purge: past tap's 300 s per file on a loaded machine.
t.setTimeout(900_000);

const SESSIONS = '/docker/registry/v2/repositories/crash/mono/_uploads';

/** Incomplete multipart uploads (s3) or segment objects (swift) in the bucket. Azure keeps uncommitted blocks out of sight. */
async function storeLeftovers(kind: StoreKind, bucket: StoreBucket): Promise<number> {
  if (kind === 's3') {
    const d = bucket.driver as S3Driver;
    const pending = await d.client.send(new ListMultipartUploadsCommand({ Bucket: (bucket.section.s3 as { bucket: string }).bucket }));
    return (pending.Uploads ?? []).length;
  }
  if (kind === 'swift') {
    const d = bucket.driver as SwiftDriver;
    const r = await d.call({ method: 'GET', query: { format: 'json', prefix: 'registry/.stowage-segments/' } }, [200, 204]);
    if (r.status === 204) {
      await r.body.dump();
      return 0;
    }
    return ((await r.body.json()) as unknown[]).length;
  }
  return 0;
}

for (const kind of ['s3', 'azure', 'swift'] as StoreKind[]) {
  const skip = missingStore(kind);
  t.test(`${kind}: kill -9 during uploads loses nothing acknowledged and exposes nothing partial`, { skip }, async (t) => {
    const store = await startObjectStore(kind);
    t.teardown(() => store.stop());
    const bucket = await store.bucket();
    await crashRounds(t, {
      start: () => startStowage({ storage: bucket.section }),
      corruptBlobs: () => corruptBlobs(bucket.driver),
      partialEvidence: async () => (await bucket.driver.list(SESSIONS).catch(() => [])).length,
      evidenceUnit: 'upload session(s)',
    });
    const leftovers = await storeLeftovers(kind, bucket);
    if (kind !== 'azure') t.ok(leftovers > 0, `the killed uploads left ${leftovers} unfinished parts or segments in the store`);

    // Restart with purging of anything older than a second: the killed sessions go, and with
    // them whatever the store kept of their unfinished writes.
    const purger = await startStowage({
      storage: bucket.section,
      config: { storage: { maintenance: { uploadpurging: { enabled: true, age: '1s', interval: '2s', dryrun: false } } } },
    });
    t.teardown(() => purger.stop());
    const deadline = Date.now() + 60_000;
    let left = -1;
    while (Date.now() < deadline) {
      left = 0;
      for (const repo of ['crash/mono', 'crash/r1', 'crash/r2', 'crash/r3']) {
        left += (await bucket.driver.list(`/docker/registry/v2/repositories/${repo}/_uploads`).catch((e: unknown) => {
          if (isPathNotFound(e)) return [];
          throw e;
        })).length;
      }
      if (left === 0) break;
      await sleep(1000);
    }
    t.equal(left, 0, 'upload purging removed every interrupted session');
    if (kind !== 'azure') t.equal(await storeLeftovers(kind, bucket), 0, 'no unfinished multipart upload or orphan segment is left');
    t.same(await corruptBlobs(bucket.driver), [], 'every blob still hashes to its name');
  });
}
