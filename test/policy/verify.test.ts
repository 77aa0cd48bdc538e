/**
 * The pure parts of the signature policy: key files, the cosign formats, verification. Keys come
 * from openssl; signatures are built byte for byte by test/helpers/cosign.ts. Malformed input of
 * every kind must give a clear reason, never an exception escaping or a crash.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import type { Digest } from '../../src/oci/digest.js';
import { PolicyGate } from '../../src/policy/gate.js';
import { pino } from 'pino';
import { FormatError, classicLayers, isAccessory, parseBundle, simpleSigningDigest, tryParse } from '../../src/policy/formats.js';
import { KeyFileError, parsePublicKeys, readKeyFile } from '../../src/policy/keys.js';
import { verifyArtifacts, type NamedKey, type SignatureArtifact } from '../../src/policy/verify.js';
import {
  bundleReferrer, classicSignature, dsseBundle, messageBundle, opensslKey, signatureTag, simpleSigningPayload, type Artifact, type KeyPair,
} from '../helpers/cosign.js';
import { makeImage, makeIndex, makeReferrer, sha256 } from '../helpers/image.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools('openssl');

t.test('signature policy: keys, formats, verification', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const release = opensslKey(dir, 'release');
  const vendor = opensslKey(dir, 'vendor', 'rsa');
  const other = opensslKey(dir, 'other');
  const named = (k: KeyPair, set: string): NamedKey => ({ ...readKeyFile(k.pub)[0]!, set });
  const keys = [named(release, 'release'), named(vendor, 'vendor')];
  const image = makeImage({ seed: 901, layers: 1 });
  const digest = image.manifest.digest as Digest;
  const ref = 'docker.io/acme/app';

  const asArtifact = (a: Artifact, form: 'cosign' | 'bundle', tag?: string): SignatureArtifact => ({
    form, digest: a.manifest.digest as Digest, mediaType: a.manifest.mediaType, bytes: a.manifest.bytes,
    ...(tag ? { tag } : {}), blobs: new Map(a.blobs.map((b) => [b.digest, b.bytes])),
  });
  const classic = (a: Artifact) => asArtifact(a, 'cosign', signatureTag(digest));
  const bundle = (json: Buffer) => asArtifact(bundleReferrer({ digest, size: image.manifest.bytes.length, mediaType: image.manifest.mediaType }, json), 'bundle');
  const check = (artifacts: SignatureArtifact[]) => verifyArtifacts(digest, image.manifest.bytes, artifacts, keys);

  await t.test('key files', async (t) => {
    t.equal(readKeyFile(release.pub)[0]!.algorithm, 'ecdsa-p256');
    t.equal(readKeyFile(vendor.pub)[0]!.algorithm, 'rsa');
    const both = join(dir, 'both.pem');
    writeFileSync(both, `# release and vendor\n${execFileSync('cat', [release.pub, vendor.pub]).toString()}`);
    t.equal(readKeyFile(both).length, 2, 'a file may hold several keys');
    t.equal(readKeyFile(both)[0]!.id, readKeyFile(release.pub)[0]!.id, 'a key has the same id whatever file holds it');
    t.throws(() => parsePublicKeys('not a key', 'k.pem'), /k\.pem: no PEM block/);
    t.throws(() => parsePublicKeys('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', 'bad.pem'), /bad\.pem: unreadable public key/);
    t.throws(() => readKeyFile(release.priv), /holds a (EC )?PRIVATE KEY; give the public key/);
    t.throws(() => readKeyFile(join(dir, 'missing.pem')), /missing\.pem: cannot read \(ENOENT\)/);
    const p384 = join(dir, 'p384.key');
    execFileSync('openssl', ['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', p384]);
    const p384pub = execFileSync('openssl', ['pkey', '-in', p384, '-pubout']).toString();
    t.throws(() => parsePublicKeys(p384pub, 'p384.pem'), /only P-256 is accepted/);
    const small = execFileSync('sh', ['-c', 'openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null | openssl pkey -pubout']).toString();
    t.throws(() => parsePublicKeys(small, 'small.pem'), /1024 bits; at least 2048/);
    const ed = execFileSync('sh', ['-c', 'openssl genpkey -algorithm ed25519 | openssl pkey -pubout']).toString();
    t.throws(() => parsePublicKeys(ed, 'ed.pem'), /ed25519 key; only ECDSA P-256 and RSA/);
    t.ok(new KeyFileError('f', 'x') instanceof Error);
  });

  await t.test('simple-signing payloads', async (t) => {
    t.equal(simpleSigningDigest(simpleSigningPayload(ref, digest)), digest);
    const capital = Buffer.from(JSON.stringify({ critical: { image: { 'Docker-manifest-digest': digest }, type: 'cosign container image signature' } }));
    t.equal(simpleSigningDigest(capital), digest, 'the spec example\'s capitalised key (Go decodes it case-insensitively)');
    t.throws(() => simpleSigningDigest(Buffer.from('{nope')), new FormatError('the simple-signing payload is not JSON'));
    t.throws(() => simpleSigningDigest(Buffer.from('[]')), /critical.type is undefined/);
    t.throws(() => simpleSigningDigest(Buffer.from(JSON.stringify({ critical: { type: 'atomic container signature', image: { 'docker-manifest-digest': digest } } }))),
      /critical.type is "atomic container signature"/);
    t.throws(() => simpleSigningDigest(Buffer.from(JSON.stringify({ critical: { type: 'cosign container image signature', image: { 'docker-manifest-digest': 'sha256:xyz' } } }))),
      /no valid critical.image.docker-manifest-digest/);
  });

  await t.test('classic signature manifests', async (t) => {
    t.equal(classicLayers(classicSignature(ref, digest, [release, vendor]).manifest.bytes).length, 2);
    t.throws(() => classicLayers(Buffer.from('garbage')), /not a valid manifest/);
    t.throws(() => classicLayers(classicSignature(ref, digest, [release], { signatureText: 'not*base64!' }).manifest.bytes), /is not base64/);
    t.throws(() => classicLayers(image.manifest.bytes), /has no application\/vnd.dev.cosign.simplesigning.v1\+json layer/);
  });

  await t.test('what counts as a signature artifact (exempt from rules)', async (t) => {
    t.ok(isAccessory(tryParse(classicSignature(ref, digest, [release]).manifest.bytes)!), 'a .sig manifest');
    t.ok(isAccessory(tryParse(bundleReferrer({ digest, size: 1, mediaType: image.manifest.mediaType }, dsseBundle(ref, digest, release)).manifest.bytes)!), 'a bundle referrer');
    t.notOk(isAccessory(tryParse(image.manifest.bytes)!), 'an image');
    t.notOk(isAccessory(tryParse(makeIndex([image]).bytes)!), 'an index');
    const withSubject = JSON.parse(image.manifest.bytes.toString()) as Record<string, unknown>;
    withSubject.subject = { mediaType: image.manifest.mediaType, digest: sha256('x'), size: 1 };
    t.notOk(isAccessory(tryParse(Buffer.from(JSON.stringify(withSubject)))!), 'an image that claims a subject is still an image');
    t.notOk(isAccessory(tryParse(makeReferrer(image.manifest, 1).manifest.bytes)!), 'an artifact of an unknown kind is not exempt');
  });

  await t.test('classic cosign signatures verify', async (t) => {
    const both = check([classic(classicSignature(ref, digest, [release, vendor]))]);
    t.same(both.signers.map((s) => [s.set, s.form]).sort(), [['release', 'cosign'], ['vendor', 'cosign']], 'ECDSA P-256 and RSA signatures');
    t.same(both.problems, []);
    const wrong = check([classic(classicSignature(ref, digest, [other]))]);
    t.same(wrong.signers, [], 'a key outside the sets signs nothing');
    t.match(wrong.problems[0], /1 payload signature\(s\) by none of the keys/);
    const tampered = check([classic(classicSignature(ref, digest, [release], { payloadDigest: makeImage({ seed: 902 }).manifest.digest }))]);
    t.same(tampered.signers, [], 'a valid signature over another manifest\'s digest does not count');
    t.match(tampered.problems[0], /the signed payload names sha256:[0-9a-f]{64}, not this manifest/);
    const garbled = check([classic(classicSignature(ref, digest, [release], { signatureText: 'QUJD' }))]);
    t.same(garbled.signers, [], 'a signature that is not DER');
    const missing = classic(classicSignature(ref, digest, [release]));
    const noPayload = { ...missing, blobs: new Map([...missing.blobs].filter(([, b]) => !b.toString().includes('critical'))) };
    t.match(check([noPayload]).problems[0], /payload sha256:[0-9a-f]+ could not be read/);
    t.match(check([classic(classicSignature(ref, digest, [release], { signatureText: '%%%' }))]).problems[0], /is not base64/);
  });

  await t.test('Sigstore bundles verify', async (t) => {
    t.same(check([bundle(dsseBundle(ref, digest, release))]).signers.map((s) => [s.set, s.form]), [['release', 'bundle']], 'DSSE over an in-toto statement');
    t.same(check([bundle(messageBundle(image.manifest.bytes, vendor))]).signers.map((s) => s.set), ['vendor'], 'a message signature over the manifest, RSA');
    const otherSubject = check([bundle(dsseBundle(ref, makeImage({ seed: 903 }).manifest.digest, release))]);
    t.same(otherSubject.signers, []);
    t.match(otherSubject.problems[0], /does not name this manifest/);
    const otherMessage = check([bundle(messageBundle(makeImage({ seed: 904 }).manifest.bytes, release))]);
    t.match(otherMessage.problems[0], /message digest is not this manifest's/);
    t.match(check([bundle(dsseBundle(ref, digest, other))]).problems[0], /signed by none of the keys/);
    const wrongType = JSON.parse(dsseBundle(ref, digest, release).toString()) as { dsseEnvelope: { payloadType: string } };
    wrongType.dsseEnvelope.payloadType = 'text/plain';
    t.match(check([bundle(Buffer.from(JSON.stringify(wrongType)))]).problems[0], /DSSE payload type is "text\/plain"/);
    t.match(check([bundle(Buffer.from('{"mediaType": 3}'))]).problems[0], /not a valid Sigstore bundle/);
    t.match(check([bundle(Buffer.from('not json'))]).problems[0], /the Sigstore bundle is not JSON/);
    t.throws(() => parseBundle(Buffer.from('{}')), FormatError);
  });

  await t.test('a reference implementation\'s bundle (sigstore-js fixture) verifies', async (t) => {
    const fixtures = join(import.meta.dirname, '../fixtures/sigstore-js');
    const artifact = readFileSync(join(fixtures, 'message-bundle.artifact'));
    const key = { ...readKeyFile(join(fixtures, 'message-bundle.pub'))[0]!, set: 'sigstore' };
    const referrer = bundleReferrer({ digest: sha256(artifact), size: artifact.length, mediaType: 'application/octet-stream' }, readFileSync(join(fixtures, 'message-bundle.json')));
    const a = asArtifact(referrer, 'bundle');
    const ok = verifyArtifacts(sha256(artifact) as Digest, artifact, [a], [key]);
    t.same(ok.signers.map((s) => s.set), ['sigstore'], 'its message signature verifies with its key');
    t.same(verifyArtifacts(sha256(artifact) as Digest, artifact, [a], keys).signers, [], 'and with no other');
    const changed = Buffer.from('hello, world?');
    t.match(verifyArtifacts(sha256(changed) as Digest, changed, [a], [key]).problems[0], /message digest is not this manifest's/, 'nor for other bytes');
  });

  await t.test('the policy: section', async (t) => {
    const yaml = (policy: string) => `version: 0.1\nstorage: {inmemory: {}}\npolicy:\n${policy}`;
    const c = parseConfig(yaml(`  keys: {release: ${release.pub}}\n  rules:\n    - repository: "docker.io/acme/**"\n      keys: release\n`), {}, 'test', dir);
    t.same(c.policy, { keys: { release: [release.pub] }, rules: [{ repository: 'docker.io/acme/**', mode: 'enforce', keys: ['release'], push: false }], cache_size: 10000 },
      'defaults: enforce, no push check; a lone key set or file is a list of one');
    t.equal(parseConfig('version: 0.1\nstorage: {inmemory: {}}\n', {}, 'test', dir).policy, undefined, 'without the section nothing changes');
    t.throws(() => parseConfig(yaml(`  keys: {release: [${release.pub}]}\n  rules: [{repository: "a/**", keys: [vendor]}]\n`), {}, 'test', dir),
      /policy\.rules\[0\]\.keys.*key set "vendor" is not defined under policy\.keys/);
    t.throws(() => parseConfig(yaml(`  rules: [{repository: "a/**", mode: strict, keys: []}]\n`), {}, 'test', dir), /policy\.rules\[0\]\.mode/);
    const log = pino({ level: 'silent' });
    t.throws(() => new PolicyGate({ keys: { release: [release.pub] }, rules: [{ repository: 'Bad Glob', mode: 'enforce', keys: ['release'], push: false }] }, { log }),
      /policy\.rules\[0\]\.repository: "Bad Glob" is not a repository glob/);
    t.throws(() => new PolicyGate({ keys: { release: [join(dir, 'nope.pem')] }, rules: [] }, { log }), /policy\.keys\.release: .*nope\.pem: cannot read/);
  });
});
