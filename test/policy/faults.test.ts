/**
 * The signature policy against an upstream that fails (test/helpers/lying-upstream.ts): a
 * signature lookup the upstream cannot answer (500, 429) leaves the question open, so enforce
 * answers 503 and stores nothing, and the next pull, once the upstream answers, is decided
 * afresh; an upstream that refuses a lookup (403) simply has no signature there.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { classicSignature, opensslKey, signatureTag } from '../helpers/cosign.js';
import { ALL_ACCEPT, OCI_MANIFEST } from '../helpers/image.js';
import { startLyingUpstream } from '../helpers/lying-upstream.js';
import { startStowage } from '../helpers/procs.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools('openssl');

t.test('signature lookups against a failing upstream', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-faults-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const release = opensslKey(dir, 'release');
  const up = await startLyingUpstream();
  t.teardown(() => up.close());
  const image = up.publishImage('acme/app', '1', []);
  const sig = classicSignature('docker.io/acme/app', image.digest, [release]);
  for (const b of sig.blobs) up.blobs.set(b.digest, { bytes: b.bytes, behaviour: 'good' });
  const sigTag = `acme/app:${signatureTag(image.digest)}`;

  const s = await startStowage({
    config: {
      upstreams: [{ name: 'docker.io', url: up.url, circuit_breaker: { failures: 100 } }],
      policy: { keys: { release: [release.pub] }, rules: [{ repository: 'docker.io/**', mode: 'enforce', keys: ['release'] }] },
    },
  });
  t.teardown(() => s.stop());
  const pull = async () => {
    const r = await fetch(`${s.url}/v2/docker.io/acme/app/manifests/1`, { headers: { accept: ALL_ACCEPT } });
    return { status: r.status, body: (await r.json().catch(() => ({}))) as { errors?: Array<{ code: string; message: string }> } };
  };

  for (const behaviour of ['500', '429'] as const) {
    up.manifests.set(sigTag, { bytes: sig.manifest.bytes, mediaType: OCI_MANIFEST, behaviour });
    const r = await pull();
    t.equal(r.status, 503, `signature lookup answered ${behaviour}: 503, not 403`);
    t.match(r.body.errors?.[0]?.message, /signatures could not be checked: upstream docker\.io could not be asked/);
  }
  const stored = join(s.rootDir, 'docker/registry/v2/blobs/sha256', image.digest.slice(7, 9), image.digest.slice(7), 'data');
  t.notOk(existsSync(stored), 'nothing stored meanwhile');

  up.manifests.set(sigTag, { bytes: sig.manifest.bytes, mediaType: OCI_MANIFEST, behaviour: 'good' });
  t.equal((await pull()).status, 200, 'once the upstream answers, the signature is checked and the image served');

  const other = up.publishImage('acme/other', '2', []); // another tag: another config, another digest
  up.manifests.set(`acme/other:${signatureTag(other.digest)}`, { bytes: Buffer.from('{}'), behaviour: '500' });
  const before = up.requests(signatureTag(other.digest));
  const r = await fetch(`${s.url}/v2/docker.io/acme/other/manifests/2`, { headers: { accept: ALL_ACCEPT } });
  t.equal(r.status, 503);
  t.ok(up.requests(signatureTag(other.digest)) > before, 'the lookup was tried');

  const third = up.publishImage('acme/third', '3', []);
  up.manifests.set(`acme/third:${signatureTag(third.digest)}`, { bytes: Buffer.from('{}'), behaviour: '403' });
  const refused = await fetch(`${s.url}/v2/docker.io/acme/third/manifests/3`, { headers: { accept: ALL_ACCEPT } });
  t.equal(refused.status, 403, 'an upstream refusing the lookup (403) has no signature to offer: DENIED, not 503');
  t.match(((await refused.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'DENIED');
});
