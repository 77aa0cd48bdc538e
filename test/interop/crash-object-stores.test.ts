/**
 * The kill -9 crash scenario (test/helpers/crash.ts) on each object-store driver: s3 (Swift's S3
 * API), azure (Azurite), swift. Then upload purging clears what the killed uploads left in the
 * store (incomplete multipart uploads, orphan segments, sessions).
 */
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { isPathNotFound } from '../../src/storage/driver.js';
import type { S3Driver } from '../../src/storage/drivers/s3.js';
import { crashRounds } from '../helpers/crash.js';
import { missingStore, startObjectStore, type StoreKind } from '../helpers/object-stores.js';
import { startStowage } from '../helpers/procs.js';
import { sleep } from '../helpers/tools.js';
import { corruptBlobs } from './object-store-scenarios.js';

const SESSIONS = '/docker/registry/v2/repositories/crash/mono/_uploads';

for (const kind of ['s3', 'azure', 'swift'] as StoreKind[]) {
  const skip = missingStore(kind);
  t.test(`${kind}: kill -9 during uploads loses nothing acknowledged and exposes nothing partial`, { skip }, async (t) => {
    const store = await startObjectStore(kind);
    t.teardown(() => store.stop());
    const bucket = await store.bucket();
    const s = await crashRounds(t, {
      start: () => startStowage({ storage: bucket.section }),
      corruptBlobs: () => corruptBlobs(bucket.driver),
      partialEvidence: async () => (await bucket.driver.list(SESSIONS).catch(() => [])).length,
    });
    await s.stop();

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
    if (kind === 's3') {
      const d = bucket.driver as S3Driver;
      const section = bucket.section.s3 as { bucket: string };
      const pending = await d.client.send(new ListMultipartUploadsCommand({ Bucket: section.bucket }));
      t.equal((pending.Uploads ?? []).length, 0, 'no incomplete multipart upload is left in the bucket');
    }
    if (kind === 'swift') {
      const segments = await bucket.driver.list('/.stowage-segments/docker/registry/v2/repositories').catch(() => [] as string[]);
      t.same(segments, [], 'no orphan segment is left');
    }
    t.same(await corruptBlobs(bucket.driver), [], 'every blob still hashes to its name');
  });
}
