/**
 * The metadata port's shared suite: every adapter (SQLite, PostgreSQL) runs it (sqlite.test.ts,
 * postgres.test.ts), as every storage driver runs test/storage/conformance.ts. `open` makes a fresh,
 * empty index; `second` (PostgreSQL) opens another process's view of the same database, for what
 * replicas must see of each other's writes.
 */
import type { Test } from 'tap';
import type { Change, MetadataIndex } from '../../src/metadata/port.js';
import { until } from '../helpers/tools.js';

export interface Adapter {
  name: string;
  open(): Promise<MetadataIndex>;
  /** Another replica on the same database as the last open() (absent: one process only). */
  second?(): Promise<MetadataIndex>;
}

/** A well-formed digest numbered n. */
export const D = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;

export function metadataConformance(t: Test, adapter: Adapter): void {
  const use = async (t: Test): Promise<MetadataIndex> => {
    const m = await adapter.open();
    t.teardown(() => m.close());
    return m;
  };

  t.test('tags: set, list in order with paging, delete, delete all of a digest', async (t) => {
    const m = await use(t);
    await m.write((w) => {
      w.addRepository('team/app');
      for (const tag of ['b', 'a', 'c', 'latest']) w.setTag('team/app', tag, D(1));
      w.setTag('team/app', 'other', D(2));
    });
    t.same(await m.listTags('team/app', '', 10), ['a', 'b', 'c', 'latest', 'other']);
    t.same(await m.listTags('team/app', 'b', 2), ['c', 'latest'], 'after b, two');
    await m.write((w) => w.setTag('team/app', 'a', D(2)));
    t.same((await m.tagsOf('team/app')).find((r) => r.tag === 'a')?.digest, D(2), 'a tag moves');
    t.same((await m.deleteTagsOf('team/app', D(1))).sort(), ['b', 'c', 'latest']);
    await m.write((w) => w.deleteTag('team/app', 'other'));
    t.same(await m.listTags('team/app', '', 10), ['a']);
    t.same(await m.listTags('nobody/here', '', 10), []);
  });

  t.test('catalog pages in name order; repositories are known once added', async (t) => {
    const m = await use(t);
    await m.write((w) => { for (const r of ['z/z', 'a/b', 'm/n', 'a/a']) w.addRepository(r); w.addRepository('a/a'); });
    t.same(await m.catalog('', 10), ['a/a', 'a/b', 'm/n', 'z/z']);
    t.same(await m.catalog('a/b', 1), ['m/n']);
    t.equal(await m.hasRepository('m/n'), true);
    t.equal(await m.hasRepository('q/q'), false);
  });

  t.test('a write batch is all or nothing', async (t) => {
    const m = await use(t);
    await t.rejects(m.write((w) => {
      w.setTag('r/one', 'a', D(1));
      // Same uuid twice in one batch is fine (ignored), but an addReferrer with a missing column is not:
      w.addReferrer({ repo: 'r/one', subject: D(1), digest: D(2), mediaType: null as unknown as string, size: 1 });
    }));
    t.same(await m.listTags('r/one', '', 10), [], 'the tag of the failed batch is not there');
  });

  t.test('manifest types, references, eligibility, held-or-referenced', async (t) => {
    const m = await use(t);
    await m.write((w) => {
      w.setManifestType(D(10), 'application/vnd.oci.image.manifest.v1+json');
      w.recordManifest('docker.io/library/a', D(10), 'cached', [{ digest: D(11), kind: 'config' }, { digest: D(12), kind: 'layer' }, { digest: D(12), kind: 'layer' }]);
      w.recordManifest('docker.io/library/b', D(10), 'cached', [{ digest: D(11), kind: 'config' }]);
    });
    t.equal(await m.manifestType(D(10)), 'application/vnd.oci.image.manifest.v1+json');
    t.equal(await m.manifestType(D(99)), undefined);
    t.same(await m.manifestRefs(D(10)), [{ digest: D(11), kind: 'config' }, { digest: D(12), kind: 'layer' }], 'each reference once, in digest order');
    t.equal(await m.isReferencedIn('docker.io/library/a', D(12)), true);
    t.equal(await m.isReferencedIn('docker.io/library/c', D(12)), false, 'only in a repository that holds the manifest');
    t.equal(await m.isHeldOrReferenced(D(10)), true);
    t.equal(await m.isHeldOrReferenced(D(12)), true);
    await m.write((w) => { w.removeManifestFrom('docker.io/library/a', D(10)); w.removeManifestFrom('docker.io/library/b', D(10)); });
    t.equal(await m.isHeldOrReferenced(D(12)), false, 'no repository holds a manifest referencing it');
    t.same(await m.repositoryManifests('docker.io/library/a'), []);
    await m.write((w) => w.forgetManifestRefs(D(10)));
    t.same(await m.manifestRefs(D(10)), []);
  });

  t.test('blobs: origin rules, usage, access times, idle deletes, unreferenced', async (t) => {
    const m = await use(t);
    await m.write((w) => {
      w.recordBlob(D(1), 100, 'cached', 'docker.io');
      w.recordBlob(D(2), 50, 'local');
      w.recordBlob(D(3), 7, 'cached', 'ghcr.io');
    });
    await m.write((w) => w.recordBlob(D(1), 100, 'local'));
    t.match(await m.blobRecord(D(1)), { size: 100, origin: 'local', upstream: null }, 'a push makes a cached blob local for good');
    await m.write((w) => w.recordBlob(D(1), 100, 'cached', 'docker.io'));
    t.match(await m.blobRecord(D(1)), { origin: 'local' }, 'and it stays local');
    t.equal(await m.cachedBytes(), 7);
    t.same((await m.usage()).map((u) => [u.origin, u.upstream, u.blobs, u.bytes]), [['cached', 'ghcr.io', 1, 7], ['local', null, 2, 150]]);
    const before = (await m.blobRecord(D(3)))!.lastAccess;
    await new Promise((r) => setTimeout(r, 5));
    m.touchBlob(D(3));
    t.equal((await m.blobRecord(D(3)))!.lastAccess, before, 'a touch waits for the flush');
    t.equal(await m.flushAccessTimes(), 1);
    t.ok((await m.blobRecord(D(3)))!.lastAccess > before, 'flushed');
    t.same(await m.expiredCachedBlobs('ghcr.io', Date.now() + 1000), [D(3)]);
    t.same((await m.unreferencedBlobs(Date.now() + 1000, 10)).map((b) => b.digest).sort(), [D(1), D(2), D(3)]);
    t.equal(await m.deleteBlobIfIdle(D(3), before - 1), false, 'used after notAfter: kept');
    t.equal(await m.deleteBlobIfIdle(D(3), Date.now() + 1000), true);
    t.equal(await m.blobRecord(D(3)), undefined);
    await m.markUsed([D(2)]);
    t.ok((await m.blobRecord(D(2)))!.lastAccess >= before);
    await m.write((w) => w.deleteBlob(D(2)));
    t.equal(await m.blobRecord(D(2)), undefined);
  });

  t.test('cached images: tops only (not children, not referrers)', async (t) => {
    const m = await use(t);
    const repo = 'docker.io/library/multi';
    await m.write((w) => {
      w.recordManifest(repo, D(20), 'cached', [{ digest: D(21), kind: 'manifest' }]);
      w.recordManifest(repo, D(21), 'cached', [{ digest: D(22), kind: 'layer' }]);
      w.recordManifest(repo, D(23), 'cached', [{ digest: D(20), kind: 'subject' }]);
      w.recordManifest('team/pushed', D(30), 'local', []);
    });
    t.same(await m.cachedImages(), [{ repo, digest: D(20) }]);
    t.same(await m.localRepositoryNames(), [], 'recordManifest does not make a name local');
  });

  t.test('referrers: list by subject, filter-free order, delete', async (t) => {
    const m = await use(t);
    await m.write((w) => {
      w.addReferrer({ repo: 'r/x', subject: D(1), digest: D(3), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, artifactType: 'application/sbom' });
      w.addReferrer({ repo: 'r/x', subject: D(1), digest: D(2), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 11, annotations: { a: 'b' } });
    });
    const rows = await m.listReferrers('r/x', D(1));
    t.same(rows.map((r) => r.digest), [D(2), D(3)]);
    t.same(rows[0]!.annotations && JSON.parse(rows[0]!.annotations), { a: 'b' });
    t.equal(rows[1]!.artifact_type, 'application/sbom');
    t.same((await m.referrerDigests('r/x', D(1))).sort(), [D(2), D(3)]);
    await m.write((w) => w.deleteReferrer('r/x', D(2)));
    t.same((await m.listReferrers('r/x', D(1))).map((r) => r.digest), [D(3)]);
  });

  t.test('local names, uploads, meta, shared secrets', async (t) => {
    const m = await use(t);
    t.equal(await m.markLocal('team/app'), true);
    t.equal(await m.markLocal('team/app'), false, 'only the first time');
    t.equal(await m.isLocal('team/app'), true);
    t.equal(await m.isLocal('docker.io/library/x'), false);
    await m.write((w) => w.markLocal('team/two'));
    t.same(await m.localRepositoryNames(), ['team/app', 'team/two']);
    await m.write((w) => { w.addUpload('u1', 'team/app', 1000); w.addUpload('u2', 'team/app', 5000); });
    t.same((await m.uploadsStartedBefore(2000)).map((u) => u.uuid), ['u1']);
    await m.write((w) => w.deleteUpload('u1'));
    t.same(await m.uploadsStartedBefore(2000), []);
    t.equal(await m.getMeta('k'), undefined);
    await m.write((w) => w.setMeta('k', 'v1'));
    await m.write((w) => w.setMeta('k', 'v2'));
    t.equal(await m.getMeta('k'), 'v2');
    const s1 = await m.sharedSecret('token');
    t.equal(s1.length, 32);
    t.same(await m.sharedSecret('token'), s1, 'made once, then the same');
    t.notSame(await m.sharedSecret('peer'), s1, 'one per name');
  });

  t.test('tag cache and negative cache', async (t) => {
    const m = await use(t);
    await m.write((w) => w.setTagCache('docker.io', 'library/a', 'latest', D(1), 'application/json', 1234));
    t.same(await m.tagCache('docker.io', 'library/a', 'latest'), { digest: D(1), media_type: 'application/json', checked_at: 1234 });
    await m.write((w) => w.seedTagCache('docker.io', 'library/a', 'latest', D(2), 'x'));
    t.equal((await m.tagCache('docker.io', 'library/a', 'latest'))!.digest, D(1), 'a seed never overwrites');
    await m.write((w) => w.setTagCache('docker.io', 'library/a', 'latest', D(2), 'x', 99));
    t.equal((await m.tagCache('docker.io', 'library/a', 'latest'))!.digest, D(2), 'a set does (and the answer is not a stale cached one)');
    await m.write((w) => w.deleteTagCacheOf('docker.io', 'library/a', D(2)));
    t.equal(await m.tagCache('docker.io', 'library/a', 'latest'), undefined);
    const now = Date.now();
    await m.write((w) => { w.setNegative('docker.io', 'library/a', 'gone', now + 60_000); w.setNegative('docker.io', 'library/a', 'old', now - 1); });
    t.equal(await m.isNegative('docker.io', 'library/a', 'gone', now), true);
    t.equal(await m.isNegative('docker.io', 'library/a', 'old', now), false, 'expired');
    await m.write((w) => w.clearNegative('docker.io', 'library/a', 'gone'));
    t.equal(await m.isNegative('docker.io', 'library/a', 'gone', now), false);
  });

  t.test('outbox: in order, exact removal, drop oldest, endpoints', async (t) => {
    const m = await use(t);
    await m.write((w) => { for (let i = 0; i < 5; i++) w.addOutbox('audit', `{"n":${i}}`); w.addOutbox('other', '{}'); });
    const rows = await m.outbox.peek('audit', 3);
    t.same(rows.map((r) => r.event), ['{"n":0}', '{"n":1}', '{"n":2}']);
    t.equal(await m.outbox.remove('audit', [rows[0]!.id, rows[2]!.id]), 2, 'exactly the ids given');
    t.same((await m.outbox.peek('audit', 10)).map((r) => r.event), ['{"n":1}', '{"n":3}', '{"n":4}']);
    t.equal(await m.outbox.dropOldest('audit', 1), 1);
    t.equal(await m.outbox.count('audit'), 2);
    t.same((await m.outbox.endpoints()).sort(), ['audit', 'other']);
    t.equal(await m.outbox.clear('other'), 1);
    t.same(await m.outbox.endpoints(), ['audit']);
  });

  t.test('leases: one holder; renewal; release; expiry', async (t) => {
    const m = await use(t);
    t.equal(await m.leases.acquire('gc', 'a', 60_000), true);
    t.equal(await m.leases.acquire('gc', 'b', 60_000), false, 'held by a');
    t.equal(await m.leases.acquire('gc', 'a', 60_000), true, 'a renews');
    t.equal(await m.leases.holder('gc'), 'a');
    await m.leases.release('gc', 'b');
    t.equal(await m.leases.holder('gc'), 'a', 'only the holder releases');
    await m.leases.release('gc', 'a');
    t.equal(await m.leases.holder('gc'), undefined);
    t.equal(await m.leases.acquire('gc', 'b', 50), true);
    await new Promise((r) => setTimeout(r, 120));
    t.equal(await m.leases.holder('gc'), undefined, 'expired');
    t.equal(await m.leases.acquire('gc', 'a', 60_000), true, 'an expired lease is taken over');
  });

  t.test('repository use: this process at once, others after a flush', async (t) => {
    const m = await use(t);
    const t0 = Date.now();
    m.noteRepositoryUse('docker.io/library/a', t0 + 10);
    t.equal(await m.repositoryUsedSince('docker.io/library/a', t0), true);
    t.equal(await m.repositoryUsedSince('docker.io/library/a', t0 + 10), false, 'strictly after');
    await m.flushRepositoryUse();
    m.noteRepositoryUse('docker.io/library/a', t0 + 5);
    await m.flushRepositoryUse();
    if (adapter.second) {
      const other = await adapter.second();
      t.teardown(() => other.close());
      t.equal(await other.repositoryUsedSince('docker.io/library/a', t0 + 9), true, 'another replica sees the later use, never moved back');
    }
  });

  t.test('changes: published for what a write changes, once per batch', async (t) => {
    const m = await use(t);
    const seen: Change[] = [];
    const off = m.changes.subscribe((c) => seen.push(c));
    t.teardown(off);
    const g = m.changes.generation;
    await m.write((w) => {
      w.setTag('r/a', 'x', D(1));
      w.setTag('r/a', 'x', D(2));
      w.removeManifestFrom('r/a', D(1));
      w.recordBlob(D(1), 1, 'local');
      w.changed({ kind: 'link', repo: 'r/a', digest: D(5) });
    });
    const kinds = seen.map((c) => JSON.stringify(c));
    t.ok(kinds.includes(JSON.stringify({ kind: 'tag', repo: 'r/a', tag: 'x' })));
    t.ok(kinds.includes(JSON.stringify({ kind: 'revision', repo: 'r/a', digest: D(1) })));
    t.ok(kinds.includes(JSON.stringify({ kind: 'link', repo: 'r/a', digest: D(5) })));
    t.notOk(kinds.some((k) => k.includes('"blob"')), 'recording a blob changes no cache');
    t.ok(m.changes.generation > g, 'the generation moved');
    await until('the change feed is live', () => m.changes.live, 10_000);
    t.pass('live');
  });

  if (adapter.second) {
    t.test('replicas: a write on one is seen by the other at once, caches included', async (t) => {
      const a = await use(t);
      const b = await adapter.second!();
      t.teardown(() => b.close());
      // Once b is live, a knows it (and waits for it); before, b caches nothing (the next test).
      await until('b\'s change feed is live', () => b.changes.live, 10_000);
      // b caches a tag-cache row (and a miss), then a changes them: b's next read is the new one.
      t.equal(await b.tagCache('docker.io', 'library/x', 'latest'), undefined);
      await a.write((w) => w.setTagCache('docker.io', 'library/x', 'latest', D(1), 'm', 1));
      t.equal((await b.tagCache('docker.io', 'library/x', 'latest'))?.digest, D(1), 'a cached miss is dropped');
      for (let i = 2; i < 30; i++) {
        await a.write((w) => w.setTagCache('docker.io', 'library/x', 'latest', D(i), 'm', i));
        t.equal((await b.tagCache('docker.io', 'library/x', 'latest'))?.digest, D(i), `round ${i}: never the previous value`);
      }
      const heard: Change[] = [];
      b.changes.subscribe((c) => heard.push(c));
      await a.write((w) => w.setTag('team/app', 'v1', D(7)));
      t.ok(heard.some((c) => c.kind === 'tag' && c.repo === 'team/app' && c.tag === 'v1'), 'b heard the tag change before a\'s write resolved');
      t.equal(await a.markLocal('team/new'), true);
      t.ok(heard.some((c) => c.kind === 'local' && c.repo === 'team/new'), 'and a name becoming local');
    });

    // A replica that has just started may hear its own announcements before the others have heard
    // of it, and a writer waits only for the replicas it knows: what the newcomer cached in that
    // moment would outlive the write. Seen once in a full run (a cached miss served after the write).
    t.test('replicas: one that has just started serves nothing cached that another has since written', async (t) => {
      const a = await use(t);
      for (let round = 0; round < 12; round++) {
        const b = await adapter.second!();
        const tag = `r${round}`;
        const seen = [await b.tagCache('docker.io', 'library/y', tag)];
        await a.write((w) => w.setTagCache('docker.io', 'library/y', tag, D(round + 1), 'm', round));
        seen.push(await b.tagCache('docker.io', 'library/y', tag));
        await b.close();
        t.same(seen.map((r) => r?.digest), [undefined, D(round + 1)], `round ${round}: the write is seen`);
      }
    });
  }
}
