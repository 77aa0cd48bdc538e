import t from 'tap';
import { RegistryError } from '../../src/errors.js';
import { digestOf, parseDigest, tryParseDigest } from '../../src/oci/digest.js';
import { inferMediaType, parseManifest } from '../../src/oci/manifest.js';
import { isValidRepoName, isValidTag, parseReference } from '../../src/oci/reference.js';
import { parseV2Path } from '../../src/http/v2-path.js';
import { parseContentRange, parseRangeHeader } from '../../src/http/range.js';

const HEX = 'a'.repeat(64);
/** Matches a RegistryError with this HTTP status. */
const withStatus = (status: number) => ({ name: 'RegistryError', status }) as never;

t.test('digests', async (t) => {
  t.equal(tryParseDigest(`sha256:${HEX}`), `sha256:${HEX}`);
  t.equal(tryParseDigest(`sha512:${'b'.repeat(128)}`), `sha512:${'b'.repeat(128)}`);
  for (const bad of ['', 'sha256:', `sha256:${HEX}0`, `sha256:${HEX.toUpperCase()}`, `md5:${HEX}`, `sha256:${'g'.repeat(64)}`, `sha256:${HEX}/..`, 'sha256:totallywrong']) {
    t.equal(tryParseDigest(bad), undefined, `rejects ${JSON.stringify(bad)}`);
  }
  t.throws(() => parseDigest('sha256:x'), new RegistryError('DIGEST_INVALID', 'invalid digest', { detail: { digest: 'sha256:x' } }));
  t.equal(digestOf(Buffer.from('')), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

t.test('names and tags', async (t) => {
  for (const ok of ['a', 'library/ubuntu', 'a-b/c_d/e.f', 'a__b', 'a---b', 'x'.repeat(255), 'ghcr.io/org/app']) t.ok(isValidRepoName(ok), ok);
  for (const bad of ['', 'A', 'a/', '/a', 'a//b', '..', 'a/../b', 'a/./b', '-a', 'a-', 'a_', 'a___b', 'a%2fb', '%2e%2e', 'x'.repeat(256), 'a b', 'a\\b']) {
    t.notOk(isValidRepoName(bad), `rejects ${JSON.stringify(bad)}`);
  }
  for (const ok of ['latest', 'v1.0', '_x', 'A-b_c.d', 'x'.repeat(128)]) t.ok(isValidTag(ok), ok);
  for (const bad of ['', '.x', '-x', 'x'.repeat(129), 'a/b', 'a:b', '..', '%2e']) t.notOk(isValidTag(bad), `rejects ${JSON.stringify(bad)}`);
  t.same(parseReference(`sha256:${HEX}`), { kind: 'digest', digest: `sha256:${HEX}` });
  t.same(parseReference('v1'), { kind: 'tag', tag: 'v1' });
  t.throws(() => parseReference('sha256:nope'), { code: 'DIGEST_INVALID' });
  t.throws(() => parseReference('.bad'), { code: 'TAG_INVALID' });
});

t.test('v2 paths', async (t) => {
  t.same(parseV2Path(''), { kind: 'base' });
  t.same(parseV2Path('_catalog'), { kind: 'catalog' });
  t.same(parseV2Path('a/b/manifests/latest'), { kind: 'manifest', name: 'a/b', reference: { kind: 'tag', tag: 'latest' } });
  t.same(parseV2Path(`a/blobs/sha256:${HEX}`), { kind: 'blob', name: 'a', digest: `sha256:${HEX}` });
  t.same(parseV2Path('a/blobs/uploads/'), { kind: 'uploads', name: 'a' });
  t.same(parseV2Path('a/blobs/uploads'), { kind: 'uploads', name: 'a' });
  t.same(parseV2Path('a/blobs/uploads/u-1'), { kind: 'upload', name: 'a', uuid: 'u-1' });
  t.same(parseV2Path('a/tags/list'), { kind: 'tags', name: 'a' });
  t.same(parseV2Path(`a/referrers/sha256:${HEX}`), { kind: 'referrers', name: 'a', digest: `sha256:${HEX}` });
  // a repository may be called "manifests" or "blobs"
  t.same(parseV2Path('manifests/manifests/x'), { kind: 'manifest', name: 'manifests', reference: { kind: 'tag', tag: 'x' } });
  t.throws(() => parseV2Path('../etc/manifests/x'), { code: 'NAME_INVALID' });
  t.throws(() => parseV2Path('a%2f..%2fb/manifests/x'), { code: 'NAME_INVALID' });
  t.match(parseV2Path('a/manifests/%2e%2e'), { kind: 'manifest', reference: { kind: 'invalid', raw: '%2e%2e', error: { code: 'TAG_INVALID' } } },
    'an invalid manifest reference is kept with its error: reads answer 404, PUT answers the error');
  t.match(parseV2Path('a/manifests/sha256:nope'), { kind: 'manifest', reference: { kind: 'invalid', error: { code: 'DIGEST_INVALID' } } });
  t.throws(() => parseV2Path('a/blobs/sha256:..%2f..'), { code: 'DIGEST_INVALID' });
  t.throws(() => parseV2Path('a/whatever'), { code: 'UNSUPPORTED' });
});

t.test('ranges', async (t) => {
  t.same(parseRangeHeader('bytes=0-9', 100), { start: 0, end: 9 });
  t.same(parseRangeHeader('bytes=90-', 100), { start: 90, end: 99 });
  t.same(parseRangeHeader('bytes=-10', 100), { start: 90, end: 99 });
  t.same(parseRangeHeader('bytes=0-1000', 100), { start: 0, end: 99 });
  t.equal(parseRangeHeader(undefined, 100), undefined);
  t.equal(parseRangeHeader('bytes=0-1,5-6', 100), undefined, 'multi-range ignored');
  t.equal(parseRangeHeader('items=0-1', 100), undefined);
  t.throws(() => parseRangeHeader('bytes=100-', 100), withStatus(416));
  t.throws(() => parseRangeHeader('bytes=0-', 0), withStatus(416));
  t.same(parseContentRange('0-99'), { start: 0, end: 99 });
  t.same(parseContentRange('bytes 5-9/*'), { start: 5, end: 9 });
  t.throws(() => parseContentRange('nonsense'), withStatus(416));
});

t.test('manifest parsing', async (t) => {
  const d = (x: string) => ({ mediaType: 'x', digest: `sha256:${x.repeat(64)}`, size: 1 });
  const m = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: d('a'), layers: [d('b'), { ...d('c'), urls: ['http://x'] }], subject: d('d') })));
  t.same(m.blobs.map((b) => b.digest), [`sha256:${'a'.repeat(64)}`, `sha256:${'b'.repeat(64)}`], 'foreign layers skipped');
  t.equal(m.subject?.digest, `sha256:${'d'.repeat(64)}`);
  t.equal(m.artifactType, 'x', 'artifactType falls back to config mediaType');
  t.equal(inferMediaType(m), 'application/vnd.oci.image.manifest.v1+json');
  t.equal(inferMediaType(parseManifest(Buffer.from('{"schemaVersion":2,"manifests":[]}'))), 'application/vnd.oci.image.index.v1+json');
  t.throws(() => parseManifest(Buffer.from('[1]')), { code: 'MANIFEST_INVALID' });
  t.throws(() => parseManifest(Buffer.from('{"layers":[{"digest":"nope","size":1,"mediaType":"x"}]}')), { code: 'MANIFEST_INVALID' });
  t.throws(() => parseManifest(Buffer.from('{"layers":[{"digest":"sha256:' + 'a'.repeat(64) + '","size":-1,"mediaType":"x"}]}')), { code: 'MANIFEST_INVALID' });
});
