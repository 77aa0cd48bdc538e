/**
 * BrowseIndex behaviour, for any adapter (browse-index.test.ts: SQLite; test/metadata/postgres.test.ts:
 * PostgreSQL): filters (prefix,
 * excluded prefixes, search with `_` taken literally), summaries, tags, references, referrers,
 * usage batches from two replicas adding up, traffic buckets, platforms.
 */
import type { Test } from 'tap';
import type { BrowseIndex } from '../../src/metadata/browse.js';
import type { MetadataIndex as MetadataPort } from '../../src/metadata/port.js';
import { sha256 } from '../helpers/image.js';

const M1 = sha256('m1');
const M2 = sha256('m2');
const CHILD = sha256('child');
const LAYER = sha256('layer');
const SIG = sha256('sig');

/** Content written through MetadataIndex, the way the registry records it. */
export async function seed(m: MetadataPort): Promise<void> {
  await m.write((w) => {
    for (const [d, size] of [[M1, 300], [M2, 400], [CHILD, 200], [LAYER, 5000], [SIG, 100]] as const) w.recordBlob(d, size, 'local');
    for (const name of ['team/app', 'team/my_app', 'teamXmy/app', 'docker.io/library/alpine']) w.addRepository(name);
    w.markLocal('team/app');
    w.recordManifest('team/app', M1, 'local', [{ digest: CHILD, kind: 'manifest' }]);
    w.recordManifest('team/app', CHILD, 'local', [{ digest: LAYER, kind: 'layer' }]);
    w.recordManifest('team/app', SIG, 'local', [{ digest: M1, kind: 'subject' }]);
    w.addReferrer({ repo: 'team/app', subject: M1, digest: SIG, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/example', size: 100, annotations: { a: 'b' } });
    w.setTag('team/app', '1.0', M1);
    w.setTag('team/app', '2.0', M1);
    w.recordManifest('docker.io/library/alpine', M2, 'cached', [{ digest: LAYER, kind: 'layer' }]);
    w.setTag('docker.io/library/alpine', '3.20', M2);
  });
}

export async function browseSuite(t: Test, browse: BrowseIndex): Promise<void> {
  t.same(await browse.repositoryNames({}, '', 10), ['docker.io/library/alpine', 'team/app', 'team/my_app', 'teamXmy/app'], 'byte order');
  t.same(await browse.repositoryNames({}, 'team/app', 1), ['team/my_app'], 'after');
  t.same(await browse.repositoryNames({ prefix: 'docker.io/' }, '', 10), ['docker.io/library/alpine'], 'prefix');
  t.same(await browse.repositoryNames({ notPrefixes: ['docker.io/'] }, '', 10), ['team/app', 'team/my_app', 'teamXmy/app'], 'excluded prefixes');
  t.same(await browse.repositoryNames({ search: 'Y_A' }, '', 10), ['team/my_app'], 'search: case-insensitive, _ is literal');
  t.equal(await browse.countRepositories({ search: 'app' }), 3);
  t.equal(await browse.countRepositories({ prefix: 'team/' }), 2, '`team/` does not match teamXmy/');

  const [app, missing] = await browse.repositorySummaries(['team/app', 'no/such']);
  t.equal(missing, undefined, 'unknown names are left out');
  t.match(app, { name: 'team/app', local: true, tags: 2, manifests: 3, pulls: 0, lastPulled: 0 });
  t.equal(app!.bytes, 300 + 200 + 5000 + 100, 'each blob of the repository once');

  const tags = await browse.tags('team/app', '', 10);
  t.same(tags.map((x) => x.tag), ['1.0', '2.0']);
  t.match(tags[0], { digest: M1, origin: 'local', pulls: 0 });
  t.same(await browse.tags('team/app', '1.0', 10).then((r) => r.map((x) => x.tag)), ['2.0']);
  t.same(await browse.tagPointers({ repo: 'docker.io/library/alpine', tag: '3.20' }, 10), [
    { repo: 'team/app', tag: '1.0', digest: M1 }, { repo: 'team/app', tag: '2.0', digest: M1 }]);
  t.same(await browse.tagsOf('team/app', M1), ['1.0', '2.0']);
  t.match(await browse.manifest('team/app', M1), { digest: M1, size: 300, origin: 'local' });
  t.equal(await browse.manifest('team/my_app', M1), undefined, 'only as the repository holds it');
  t.same((await browse.refsOf([M1, CHILD])).map((r) => `${r.manifest === M1 ? 'M1' : 'CHILD'}:${r.kind}`).sort(), ['CHILD:layer', 'M1:manifest']);
  t.same([...(await browse.blobSizes([LAYER, sha256('absent')]))], [[LAYER, 5000]]);
  t.match(await browse.referrers('team/app', [M1]), [{ subject: M1, digest: SIG, artifactType: 'application/example', annotations: { a: 'b' } }]);

  // Two replicas flush their batches: the counts add up.
  const minute = 60_000 * 1_000_000;
  const point = (at: number, n: number) => ({ at, requests: n, hits: n, misses: 0, localBytes: 0, cacheBytes: 10 * n, fetchedBytes: 0 });
  await browse.addUsage({ pulls: [{ repo: 'team/app', digest: M1, count: 2, last: 1000 }], traffic: [point(minute, 1)] });
  await browse.addUsage({ pulls: [{ repo: 'team/app', digest: M1, count: 3, last: 500 }], traffic: [point(minute, 2), point(minute + 60_000, 4)] });
  t.match((await browse.tags('team/app', '', 1))[0], { pulls: 5, lastPulled: 1000 }, 'pulls add up; the latest time wins');
  t.same(await browse.mostPulled(5), [{ repo: 'team/app', digest: M1, pulls: 5, lastPulled: 1000 }]);
  t.same(await browse.traffic(minute, 60_000), [point(minute, 3), point(minute + 60_000, 4)], 'minutes add up across replicas');
  t.same(await browse.traffic(0, 600_000), [{ ...point(minute, 7) }], 'wider buckets sum the minutes, aligned to the bucket');
  t.equal(await browse.pruneTraffic(minute + 1), 1);

  t.same([...(await browse.platforms([M1]))], []);
  await browse.setPlatforms(M1, ['linux/amd64', 'linux/arm64/v8']);
  t.same([...(await browse.platforms([M1, M2]))], [[M1, ['linux/amd64', 'linux/arm64/v8']]]);

  t.match(await browse.usage(), [{ origin: 'local', blobs: 5, bytes: 6000 }]);
}

