/**
 * Bad input: every request below gets its OCI error JSON with the right status, never a 500,
 * and leaves storage exactly as it was (no partial blob, no link, no upload session).
 */
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import t from 'tap';
import { allFiles, injectSender, makeApp, socketSender, type Req } from '../helpers/app.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blob = Buffer.from('some blob bytes');
const octet = { 'content-type': 'application/octet-stream' };
const OCI = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };

/** rawOnly: the inject client resolves dot segments itself, so only a raw socket sends these as is. */
const CASES: Array<{ name: string; req: Req; status: number; code: string; rawOnly?: boolean }> = [
  { name: 'upper-case name', req: { method: 'GET', url: '/v2/Library/x/manifests/latest' }, status: 400, code: 'NAME_INVALID' },
  { name: 'name with ..', req: { method: 'GET', url: '/v2/a/../b/manifests/latest' }, status: 400, code: 'NAME_INVALID', rawOnly: true },
  { name: 'name with encoded ..', req: { method: 'GET', url: '/v2/a/%2e%2e/b/manifests/latest' }, status: 400, code: 'NAME_INVALID', rawOnly: true },
  { name: 'push to a name with ..', req: { method: 'POST', url: '/v2/a/../../blobs/uploads/' }, status: 400, code: 'NAME_INVALID', rawOnly: true },
  { name: 'name with encoded slash', req: { method: 'POST', url: '/v2/a%2f..%2f..%2fetc/blobs/uploads/' }, status: 400, code: 'NAME_INVALID' },
  { name: 'name with encoded ../ in push', req: { method: 'PUT', url: '/v2/..%2f..%2fetc/manifests/x', headers: OCI, body: '{}' }, status: 400, code: 'NAME_INVALID' },
  { name: 'name too long', req: { method: 'GET', url: `/v2/${'a'.repeat(256)}/tags/list` }, status: 400, code: 'NAME_INVALID' },
  { name: 'name with double underscore run', req: { method: 'GET', url: '/v2/a___b/tags/list' }, status: 400, code: 'NAME_INVALID' },
  { name: 'tag starting with a dot', req: { method: 'PUT', url: '/v2/a/manifests/.hidden', headers: OCI, body: '{}' }, status: 400, code: 'TAG_INVALID' },
  // A reference that is neither a tag nor a digest names no manifest: reads and deletes get 404
  // MANIFEST_UNKNOWN (as the distribution-spec conformance suite expects), a PUT the parse error.
  { name: 'tag too long', req: { method: 'GET', url: `/v2/a/manifests/${'t'.repeat(129)}` }, status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'conformance: .INVALID_MANIFEST_NAME', req: { method: 'GET', url: '/v2/a/manifests/.INVALID_MANIFEST_NAME' }, status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'HEAD of an invalid reference', req: { method: 'HEAD', url: '/v2/a/manifests/.INVALID_MANIFEST_NAME' }, status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'PUT with an invalid tag', req: { method: 'PUT', url: `/v2/a/manifests/${'t'.repeat(129)}`, headers: OCI, body: '{}' }, status: 400, code: 'TAG_INVALID' },
  { name: 'tag with encoded ..', req: { method: 'GET', url: '/v2/a/manifests/%2e%2e' }, status: 404, code: 'MANIFEST_UNKNOWN', rawOnly: true },
  { name: 'PUT to a tag with encoded ..', req: { method: 'PUT', url: '/v2/a/manifests/%2e%2e', headers: OCI, body: '{}' }, status: 400, code: 'TAG_INVALID', rawOnly: true },
  { name: 'tag with encoded slash', req: { method: 'GET', url: '/v2/a/manifests/x%2fy' }, status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'digest reference that is garbage', req: { method: 'GET', url: '/v2/x/manifests/sha256:totallywrong' }, status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'PUT to a digest reference that is garbage', req: { method: 'PUT', url: '/v2/x/manifests/sha256:totallywrong', headers: OCI, body: '{}' }, status: 400, code: 'DIGEST_INVALID' },
  { name: 'blob digest with traversal', req: { method: 'GET', url: '/v2/a/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd' }, status: 400, code: 'DIGEST_INVALID' },
  { name: 'blob digest unknown algorithm', req: { method: 'GET', url: `/v2/a/blobs/md5:${'a'.repeat(32)}` }, status: 400, code: 'DIGEST_INVALID' },
  { name: 'upload id with traversal', req: { method: 'PATCH', url: '/v2/a/blobs/uploads/..%2f..%2fdata', headers: octet, body: 'x' }, status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  { name: 'upload id not a uuid', req: { method: 'PUT', url: `/v2/a/blobs/uploads/abc?digest=${sha('x')}`, headers: octet, body: 'x' }, status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  { name: 'upload id that does not exist', req: { method: 'GET', url: '/v2/a/blobs/uploads/00000000-0000-4000-8000-000000000000' }, status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  { name: 'monolithic push with the wrong digest', req: { method: 'POST', url: `/v2/a/blobs/uploads/?digest=${sha('other')}`, headers: octet, body: blob }, status: 400, code: 'DIGEST_INVALID' },
  { name: 'monolithic push with an invalid digest', req: { method: 'POST', url: '/v2/a/blobs/uploads/?digest=sha256:zz', headers: octet, body: blob }, status: 400, code: 'DIGEST_INVALID' },
  { name: 'mount with an invalid digest', req: { method: 'POST', url: '/v2/a/blobs/uploads/?mount=nope&from=b' }, status: 400, code: 'DIGEST_INVALID' },
  { name: 'mount from an invalid name', req: { method: 'POST', url: `/v2/a/blobs/uploads/?mount=${sha('x')}&from=../b` }, status: 400, code: 'NAME_INVALID' },
  { name: 'manifest that is not JSON', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: OCI, body: '\u0000\u0001garbage' }, status: 400, code: 'MANIFEST_INVALID' },
  { name: 'manifest that is a JSON array', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: OCI, body: '[]' }, status: 400, code: 'MANIFEST_INVALID' },
  { name: 'manifest with a bad descriptor', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: OCI, body: JSON.stringify({ schemaVersion: 2, config: { digest: 'x', size: 1, mediaType: 'a' }, layers: [] }) }, status: 400, code: 'MANIFEST_INVALID' },
  { name: 'image manifest without a config', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: OCI, body: '{"schemaVersion":2,"layers":[]}' }, status: 400, code: 'MANIFEST_INVALID' },
  { name: 'image manifest without a layers list', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: OCI, body: JSON.stringify({ schemaVersion: 2, config: { digest: sha('c'), size: 1, mediaType: 'a' } }) }, status: 400, code: 'MANIFEST_INVALID' },
  { name: 'image manifest of schemaVersion 3', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: OCI, body: JSON.stringify({ schemaVersion: 3, config: { digest: sha('c'), size: 1, mediaType: 'a' }, layers: [] }) }, status: 400, code: 'MANIFEST_INVALID' },
  { name: 'JSON typed by nothing but its (missing) parts', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: { 'content-type': 'application/json' }, body: '{"schemaVersion":2}' }, status: 400, code: 'MANIFEST_INVALID' },
  { name: 'index without a manifests list', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: '{"schemaVersion":2}' }, status: 400, code: 'MANIFEST_INVALID' },
  { name: 'manifest referencing unknown blobs', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: OCI, body: JSON.stringify({ schemaVersion: 2, config: { digest: sha('c'), size: 1, mediaType: 'a' }, layers: [] }) }, status: 400, code: 'MANIFEST_BLOB_UNKNOWN' },
  { name: 'manifest over 4 MiB', req: { method: 'PUT', url: '/v2/a/manifests/v1', headers: OCI, body: Buffer.alloc(5 * 1024 * 1024, 0x20) }, status: 413, code: 'MANIFEST_INVALID' },
  { name: 'manifest whose digest is not the reference', req: { method: 'PUT', url: `/v2/a/manifests/${sha('x')}`, headers: OCI, body: '{"schemaVersion":2}' }, status: 400, code: 'DIGEST_INVALID' },
  { name: 'tags list with n=abc', req: { method: 'GET', url: '/v2/a/tags/list?n=abc' }, status: 400, code: 'PAGINATION_NUMBER_INVALID' },
  { name: 'malformed percent-encoding in the path', req: { method: 'GET', url: '/v2/%zz/tags/list' }, status: 400, code: 'NAME_INVALID' },
  { name: 'catalog with n=-5', req: { method: 'GET', url: '/v2/_catalog?n=-5' }, status: 400, code: 'PAGINATION_NUMBER_INVALID' },
];

for (const transport of ['inject', 'socket'] as const) {
  t.test(`bad input over ${transport}`, async (t) => {
    const app = makeApp();
    t.teardown(() => app.close());
    const send = transport === 'inject' ? injectSender(app.app) : (await socketSender(app.app)).send;
    // something legitimate exists first, so "nothing behind" is checked against a non-empty tree
    const ok = await send({ method: 'POST', url: `/v2/base/blobs/uploads/?digest=${sha(blob)}`, headers: octet, body: blob });
    t.equal(ok.status, 201);
    const before = await allFiles(app.storage);
    for (const c of CASES) {
      if (c.rawOnly && transport === 'inject') continue;
      const res = await send(c.req);
      t.equal(res.status, c.status, `${c.name}: status`);
      let body: any;
      try { body = res.json(); } catch { body = undefined; }
      if (c.req.method === 'HEAD') t.equal(body, undefined, `${c.name}: no body`);
      else t.equal(body?.errors?.[0]?.code, c.code, `${c.name}: code`);
      t.same(await allFiles(app.storage), before, `${c.name}: storage unchanged`);
    }
  });
}

t.test('a request the HTTP parser refuses gets the OCI error body, and the connection is closed', async (t) => {
  const app = makeApp();
  t.teardown(() => app.close());
  const { base } = await socketSender(app.app);
  const port = Number(new URL(base).port);
  const exchange = (request: string) => new Promise<string>((resolve) => {
    let received = '';
    const sock = connect(port, '127.0.0.1', () => sock.write(request));
    sock.on('data', (d: Buffer) => { received += d.toString(); });
    sock.on('close', () => resolve(received));
    sock.on('error', () => undefined);
  });
  const cases = [
    { name: 'a Content-Length that is not a number', request: 'PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', status: 400 },
    { name: 'a request line that is not HTTP', request: 'HELLO THERE\r\n\r\n', status: 400 },
    { name: 'headers over the size limit', request: `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, status: 431 },
  ];
  for (const c of cases) {
    const received = await exchange(c.request);
    t.match(received, new RegExp(`^HTTP/1\\.1 ${c.status} `), `${c.name}: status ${c.status}`);
    const body = received.slice(received.indexOf('\r\n\r\n') + 4);
    let parsed: any;
    try { parsed = JSON.parse(body); } catch { parsed = undefined; }
    t.equal(parsed?.errors?.[0]?.code, 'UNSUPPORTED', `${c.name}: OCI error body`);
  }
});

t.test('out-of-order and mis-sized chunks leave the session as it was', async (t) => {
  const app = makeApp();
  t.teardown(() => app.close());
  const send = injectSender(app.app);
  const post = await send({ method: 'POST', url: '/v2/a/blobs/uploads/' });
  const loc = post.headers.location!.replace(/^https?:\/\/[^/]+/, '');
  const first = await send({ method: 'PATCH', url: loc, headers: { ...octet, 'content-range': '0-4', 'content-length': '5' }, body: 'abcde' });
  t.equal(first.status, 202);
  const before = await allFiles(app.storage);
  const gap = await send({ method: 'PATCH', url: loc, headers: { ...octet, 'content-range': '10-14', 'content-length': '5' }, body: 'klmno' });
  t.equal(gap.status, 416);
  t.equal(gap.headers.range, '0-4');
  const mismatch = await send({ method: 'PATCH', url: loc, headers: { ...octet, 'content-range': '5-9', 'content-length': '3' }, body: 'fgh' });
  t.equal(mismatch.status, 400);
  t.equal(mismatch.json().errors[0].code, 'SIZE_INVALID');
  t.same(await allFiles(app.storage), before);
  const status = await send({ method: 'GET', url: loc });
  t.equal(status.headers.range, '0-4', 'offset unchanged');
  const done = await send({ method: 'PUT', url: `${loc}?digest=${sha('abcdefghij')}`, headers: { ...octet, 'content-range': '5-9', 'content-length': '5' }, body: 'fghij' });
  t.equal(done.status, 201, 'the session still completes');
});

t.test('a truncated upload body leaves no blob and no session', async (t) => {
  const app = makeApp();
  t.teardown(() => app.close());
  const { base } = await socketSender(app.app);
  const before = await allFiles(app.storage);
  const full = Buffer.alloc(100_000, 7);
  const port = Number(new URL(base).port);
  await new Promise<void>((resolve) => {
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(`POST /v2/a/blobs/uploads/?digest=${sha(full)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${full.length}\r\n\r\n`);
      sock.write(full.subarray(0, 40_000), () => setTimeout(() => { sock.destroy(); resolve(); }, 100));
    });
  });
  // the server notices the aborted request and cleans up asynchronously
  let after: string[] = [];
  for (let i = 0; i < 50; i++) {
    after = await allFiles(app.storage);
    if (after.length === before.length) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.same(after, before, 'nothing left in storage');
  const head = await app.app.inject({ method: 'HEAD', url: `/v2/a/blobs/${sha(full)}` });
  t.equal(head.statusCode, 404);
});
