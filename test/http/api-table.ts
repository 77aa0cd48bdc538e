/**
 * The OCI distribution API, endpoint by endpoint, as one table of steps. api.test.ts runs it twice:
 * through fastify.inject and over a real socket. Each step builds its request from the state
 * earlier steps left (upload locations), and states the status, headers and OCI error code expected.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Req, Res } from '../helpers/app.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

export const small = Buffer.from('hello stowage');
export const big = randomBytes(3 * 1024 * 1024 + 17);
export const chunked = randomBytes(200_000);
export const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
const desc = (mediaType: string, b: Buffer) => ({ mediaType, digest: sha(b), size: b.length });
export const manifest = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: OCI_MANIFEST,
  config: desc('application/vnd.oci.image.config.v1+json', config),
  layers: [desc('application/vnd.oci.image.layer.v1.tar+gzip', small), desc('application/vnd.oci.image.layer.v1.tar+gzip', big)],
}, null, 3)); // odd indentation: bytes must come back exactly as pushed
export const dockerManifest = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: DOCKER_MANIFEST,
  config: desc('application/vnd.docker.container.image.v1+json', config),
  layers: [desc('application/vnd.docker.image.rootfs.diff.tar.gzip', small)],
}));
export const index = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: OCI_INDEX,
  manifests: [{ ...desc(OCI_MANIFEST, manifest), platform: { architecture: 'amd64', os: 'linux' } }],
}));
export const emptyConfig = Buffer.from('{}');
export const artifact = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.sbom',
  config: desc('application/vnd.oci.empty.v1+json', emptyConfig),
  layers: [desc('application/vnd.example.sbom.layer', small)],
  subject: desc(OCI_MANIFEST, manifest),
  annotations: { 'org.example': 'yes' },
}));
export const artifact2 = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.sig',
  config: desc('application/vnd.oci.empty.v1+json', emptyConfig),
  layers: [desc('application/vnd.example.sig.layer', small)],
  subject: desc(OCI_MANIFEST, manifest),
}));
export const customType = 'application/vnd.example.thing.v1+json';
export const custom = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: customType, blobs: [desc('x/y', small)] }));

export interface Step {
  name: string;
  req: (s: State) => Req;
  status: number;
  code?: string;
  headers?: Record<string, string | RegExp>;
  check?: (res: Res, s: State, t: { equal: Function; same: Function; ok: Function; match: Function }) => void;
  save?: (res: Res, s: State) => void;
}
export type State = Record<string, string>;

const path = (url: string) => url.replace(/^https?:\/\/[^/]+/, '');
const R = 'team/app';

export const API_STEPS: Step[] = [
  // end-1
  { name: 'GET /v2/', req: () => ({ method: 'GET', url: '/v2/' }), status: 200,
    headers: { 'docker-distribution-api-version': 'registry/2.0', 'x-content-type-options': 'nosniff' } },
  { name: 'GET /v2 without slash', req: () => ({ method: 'GET', url: '/v2' }), status: 200 },
  // end-2 / end-10 on missing things
  { name: 'HEAD missing blob', req: () => ({ method: 'HEAD', url: `/v2/${R}/blobs/${sha(small)}` }), status: 404 },
  { name: 'GET missing blob', req: () => ({ method: 'GET', url: `/v2/${R}/blobs/${sha(small)}` }), status: 404, code: 'BLOB_UNKNOWN' },
  { name: 'GET missing manifest', req: () => ({ method: 'GET', url: `/v2/${R}/manifests/latest` }), status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'tags of unknown repo', req: () => ({ method: 'GET', url: `/v2/nope/tags/list` }), status: 404, code: 'NAME_UNKNOWN' },
  // end-4b monolithic POST ?digest=
  { name: 'monolithic POST ?digest=', req: () => ({ method: 'POST', url: `/v2/${R}/blobs/uploads/?digest=${sha(small)}`,
      headers: { 'content-type': 'application/octet-stream' }, body: small }), status: 201,
    headers: { 'docker-content-digest': sha(small), location: new RegExp(`/v2/${R}/blobs/${sha(small)}$`) } },
  { name: 'HEAD blob after push', req: () => ({ method: 'HEAD', url: `/v2/${R}/blobs/${sha(small)}` }), status: 200,
    headers: { 'content-length': String(small.length), 'docker-content-digest': sha(small), etag: `"${sha(small)}"` } },
  { name: 'GET blob', req: () => ({ method: 'GET', url: `/v2/${R}/blobs/${sha(small)}` }), status: 200,
    check: (res, _s, t) => t.same(res.body, small) },
  { name: 'GET blob Range', req: () => ({ method: 'GET', url: `/v2/${R}/blobs/${sha(small)}`, headers: { range: 'bytes=6-12' } }), status: 206,
    headers: { 'content-range': `bytes 6-12/${small.length}`, 'content-length': '7' }, check: (res, _s, t) => t.equal(res.body.toString(), 'stowage') },
  { name: 'GET blob suffix Range', req: () => ({ method: 'GET', url: `/v2/${R}/blobs/${sha(small)}`, headers: { range: 'bytes=-3' } }), status: 206,
    check: (res, _s, t) => t.equal(res.body.toString(), 'age') },
  { name: 'GET blob unsatisfiable Range', req: () => ({ method: 'GET', url: `/v2/${R}/blobs/${sha(small)}`, headers: { range: 'bytes=999-' } }), status: 416,
    headers: { 'content-range': `bytes */${small.length}` } },
  { name: 'blob If-None-Match', req: () => ({ method: 'GET', url: `/v2/${R}/blobs/${sha(small)}`, headers: { 'if-none-match': `"${sha(small)}"` } }), status: 304 },
  // end-4a + end-6: POST then PUT
  { name: 'POST starts a session', req: () => ({ method: 'POST', url: `/v2/${R}/blobs/uploads/` }), status: 202,
    headers: { range: '0-0', 'docker-upload-uuid': /^[0-9a-f-]{36}$/, location: new RegExp(`/v2/${R}/blobs/uploads/[0-9a-f-]{36}$`) },
    save: (res, s) => { s.big = path(res.headers.location!); } },
  { name: 'PUT with the wrong digest', req: (s) => ({ method: 'PUT', url: `${s.big}?digest=${sha('other')}`,
      headers: { 'content-type': 'application/octet-stream' }, body: big }), status: 400, code: 'DIGEST_INVALID' },
  { name: 'the failed session is still there (resumable)', req: (s) => ({ method: 'GET', url: s.big! }), status: 204,
    headers: { range: `0-${big.length - 1}` } },
  { name: 'PUT with no more bytes completes it', req: (s) => ({ method: 'PUT', url: `${s.big}?digest=${sha(big)}` }), status: 201,
    headers: { 'docker-content-digest': sha(big) } },
  { name: 'the completed session is gone', req: (s) => ({ method: 'GET', url: s.big! }), status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  { name: 'GET big blob', req: () => ({ method: 'GET', url: `/v2/${R}/blobs/${sha(big)}` }), status: 200,
    check: (res, _s, t) => t.equal(sha(res.body), sha(big)) },
  // end-5 chunked
  { name: 'POST for chunks', req: () => ({ method: 'POST', url: `/v2/${R}/blobs/uploads/` }), status: 202,
    save: (res, s) => { s.chunk = path(res.headers.location!); } },
  { name: 'PATCH chunk 1', req: (s) => ({ method: 'PATCH', url: s.chunk!,
      headers: { 'content-type': 'application/octet-stream', 'content-range': '0-99999', 'content-length': '100000' }, body: chunked.subarray(0, 100_000) }),
    status: 202, headers: { range: '0-99999' }, save: (res, s) => { s.chunk = path(res.headers.location!); } },
  { name: 'PATCH out of order -> 416', req: (s) => ({ method: 'PATCH', url: s.chunk!,
      headers: { 'content-type': 'application/octet-stream', 'content-range': '100-199', 'content-length': '100' }, body: chunked.subarray(100, 200) }),
    status: 416, code: 'BLOB_UPLOAD_INVALID', headers: { range: '0-99999' } },
  { name: 'GET upload status', req: (s) => ({ method: 'GET', url: s.chunk! }), status: 204, headers: { range: '0-99999' } },
  { name: 'PATCH chunk 2 (streamed, no Content-Range)', req: (s) => ({ method: 'PATCH', url: s.chunk!,
      headers: { 'content-type': 'application/octet-stream' }, body: chunked.subarray(100_000, 150_000) }), status: 202, headers: { range: '0-149999' } },
  { name: 'PUT final chunk + digest', req: (s) => ({ method: 'PUT', url: `${s.chunk}?digest=${sha(chunked)}`,
      headers: { 'content-type': 'application/octet-stream', 'content-range': '150000-199999', 'content-length': '50000' }, body: chunked.subarray(150_000) }),
    status: 201, headers: { 'docker-content-digest': sha(chunked) } },
  { name: 'chunked blob intact', req: () => ({ method: 'GET', url: `/v2/${R}/blobs/${sha(chunked)}` }), status: 200,
    check: (res, _s, t) => t.equal(sha(res.body), sha(chunked)) },
  // end-13 cancel
  { name: 'POST to cancel', req: () => ({ method: 'POST', url: `/v2/${R}/blobs/uploads/` }), status: 202, save: (res, s) => { s.cancel = path(res.headers.location!); } },
  { name: 'DELETE upload', req: (s) => ({ method: 'DELETE', url: s.cancel! }), status: 204 },
  { name: 'cancelled upload is unknown', req: (s) => ({ method: 'PATCH', url: s.cancel!, body: 'x', headers: { 'content-type': 'application/octet-stream' } }), status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  // config blobs for manifests
  { name: 'push config', req: () => ({ method: 'POST', url: `/v2/${R}/blobs/uploads/?digest=${sha(config)}`, headers: { 'content-type': 'application/octet-stream' }, body: config }), status: 201 },
  { name: 'push empty config', req: () => ({ method: 'POST', url: `/v2/${R}/blobs/uploads/?digest=${sha(emptyConfig)}`, headers: { 'content-type': 'application/octet-stream' }, body: emptyConfig }), status: 201 },
  // end-11 mount
  { name: 'mount from a repo that has the blob', req: () => ({ method: 'POST', url: `/v2/other/blobs/uploads/?mount=${sha(big)}&from=${R}` }), status: 201,
    headers: { location: new RegExp(`/v2/other/blobs/${sha(big)}$`), 'docker-content-digest': sha(big) } },
  { name: 'mounted blob readable', req: () => ({ method: 'HEAD', url: `/v2/other/blobs/${sha(big)}` }), status: 200 },
  { name: 'mount from a repo without it -> 202 session', req: () => ({ method: 'POST', url: `/v2/other/blobs/uploads/?mount=${sha(big)}&from=nothere` }), status: 202,
    headers: { location: /\/v2\/other\/blobs\/uploads\/[0-9a-f-]{36}$/ } },
  // end-7 manifests
  { name: 'PUT manifest with missing blobs', req: () => ({ method: 'PUT', url: `/v2/other/manifests/v1`, headers: { 'content-type': OCI_MANIFEST }, body: manifest }),
    status: 400, code: 'MANIFEST_BLOB_UNKNOWN' },
  { name: 'PUT manifest invalid JSON', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/v1`, headers: { 'content-type': OCI_MANIFEST }, body: '{not json' }),
    status: 400, code: 'MANIFEST_INVALID' },
  { name: 'PUT manifest by wrong digest', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/${sha('nope')}`, headers: { 'content-type': OCI_MANIFEST }, body: manifest }),
    status: 400, code: 'DIGEST_INVALID' },
  { name: 'PUT manifest too big', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/huge`, headers: { 'content-type': OCI_MANIFEST }, body: Buffer.alloc(4 * 1024 * 1024 + 1, 0x20) }),
    status: 413, code: 'MANIFEST_INVALID' },
  { name: 'PUT manifest by tag', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/v1`, headers: { 'content-type': OCI_MANIFEST }, body: manifest }),
    status: 201, headers: { 'docker-content-digest': sha(manifest), location: new RegExp(`/v2/${R}/manifests/${sha(manifest)}$`) } },
  { name: 'GET manifest by tag: exact bytes and type', req: () => ({ method: 'GET', url: `/v2/${R}/manifests/v1`, headers: { accept: OCI_MANIFEST } }), status: 200,
    headers: { 'content-type': OCI_MANIFEST, 'docker-content-digest': sha(manifest), 'content-length': String(manifest.length) },
    check: (res, _s, t) => t.ok(res.body.equals(manifest), 'byte-for-byte') },
  { name: 'HEAD manifest by digest', req: () => ({ method: 'HEAD', url: `/v2/${R}/manifests/${sha(manifest)}` }), status: 200,
    headers: { 'content-type': OCI_MANIFEST, 'content-length': String(manifest.length) } },
  { name: 'PUT same manifest by digest', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/${sha(manifest)}`, headers: { 'content-type': OCI_MANIFEST }, body: manifest }), status: 201 },
  { name: 'PUT docker schema2 manifest', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/docker`, headers: { 'content-type': DOCKER_MANIFEST }, body: dockerManifest }), status: 201 },
  { name: 'GET docker manifest keeps its type', req: () => ({ method: 'GET', url: `/v2/${R}/manifests/docker` }), status: 200,
    headers: { 'content-type': DOCKER_MANIFEST }, check: (res, _s, t) => t.ok(res.body.equals(dockerManifest)) },
  { name: 'PUT index referencing the manifest', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/multi`, headers: { 'content-type': OCI_INDEX }, body: index }), status: 201 },
  { name: 'GET index', req: () => ({ method: 'GET', url: `/v2/${R}/manifests/multi` }), status: 200, headers: { 'content-type': OCI_INDEX },
    check: (res, _s, t) => t.ok(res.body.equals(index)) },
  { name: 'PUT custom media type', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/custom`, headers: { 'content-type': customType }, body: custom }), status: 201 },
  { name: 'GET custom media type', req: () => ({ method: 'GET', url: `/v2/${R}/manifests/custom` }), status: 200, headers: { 'content-type': customType } },
  { name: 'PUT with mismatched Content-Type', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/bad`, headers: { 'content-type': DOCKER_MANIFEST }, body: manifest }), status: 400, code: 'MANIFEST_INVALID' },
  // end-12 referrers
  { name: 'referrers empty', req: () => ({ method: 'GET', url: `/v2/${R}/referrers/${sha(manifest)}` }), status: 200, headers: { 'content-type': OCI_INDEX },
    check: (res, _s, t) => t.same(res.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }) },
  { name: 'PUT artifact with subject', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/${sha(artifact)}`, headers: { 'content-type': OCI_MANIFEST }, body: artifact }), status: 201,
    headers: { 'oci-subject': sha(manifest) } },
  { name: 'PUT second artifact', req: () => ({ method: 'PUT', url: `/v2/${R}/manifests/${sha(artifact2)}`, headers: { 'content-type': OCI_MANIFEST }, body: artifact2 }), status: 201 },
  { name: 'referrers lists both', req: () => ({ method: 'GET', url: `/v2/${R}/referrers/${sha(manifest)}` }), status: 200,
    check: (res, _s, t) => {
      const m = res.json().manifests as Array<{ digest: string; artifactType: string; annotations?: object }>;
      t.same(m.map((x) => x.digest).sort(), [sha(artifact), sha(artifact2)].sort());
      t.same(m.find((x) => x.digest === sha(artifact))?.annotations, { 'org.example': 'yes' });
    } },
  { name: 'referrers filtered by artifactType', req: () => ({ method: 'GET', url: `/v2/${R}/referrers/${sha(manifest)}?artifactType=application/vnd.example.sig` }), status: 200,
    headers: { 'oci-filters-applied': 'artifactType' },
    check: (res, _s, t) => t.same(res.json().manifests.map((x: { digest: string }) => x.digest), [sha(artifact2)]) },
  { name: 'referrers with a bad digest', req: () => ({ method: 'GET', url: `/v2/${R}/referrers/sha256:abc` }), status: 400, code: 'DIGEST_INVALID' },
  // end-8 tags, catalog
  { name: 'tags list', req: () => ({ method: 'GET', url: `/v2/${R}/tags/list` }), status: 200,
    check: (res, _s, t) => t.same(res.json(), { name: R, tags: ['custom', 'docker', 'multi', 'v1'] }) },
  { name: 'tags list n=2', req: () => ({ method: 'GET', url: `/v2/${R}/tags/list?n=2` }), status: 200,
    headers: { link: `</v2/${R}/tags/list?n=2&last=docker>; rel="next"` }, check: (res, _s, t) => t.same(res.json().tags, ['custom', 'docker']) },
  { name: 'tags list n=2&last=docker', req: () => ({ method: 'GET', url: `/v2/${R}/tags/list?n=2&last=docker` }), status: 200,
    check: (res, _s, t) => { t.same(res.json().tags, ['multi', 'v1']); t.equal(res.headers.link, undefined); } },
  { name: 'tags list bad n', req: () => ({ method: 'GET', url: `/v2/${R}/tags/list?n=-1` }), status: 400, code: 'PAGINATION_NUMBER_INVALID' },
  { name: 'catalog', req: () => ({ method: 'GET', url: `/v2/_catalog` }), status: 200, check: (res, _s, t) => t.same(res.json(), { repositories: [R] }) },
  { name: 'catalog n=1', req: () => ({ method: 'GET', url: `/v2/_catalog?n=1&last=a` }), status: 200, check: (res, _s, t) => t.same(res.json(), { repositories: [R] }) },
  // end-9 / end-10 deletes
  { name: 'DELETE tag', req: () => ({ method: 'DELETE', url: `/v2/${R}/manifests/docker` }), status: 202 },
  { name: 'deleted tag is gone', req: () => ({ method: 'GET', url: `/v2/${R}/manifests/docker` }), status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'DELETE manifest by digest', req: () => ({ method: 'DELETE', url: `/v2/${R}/manifests/${sha(artifact2)}` }), status: 202 },
  { name: 'deleted manifest gone from referrers', req: () => ({ method: 'GET', url: `/v2/${R}/referrers/${sha(manifest)}` }), status: 200,
    check: (res, _s, t) => t.same(res.json().manifests.map((x: { digest: string }) => x.digest), [sha(artifact)]) },
  { name: 'DELETE missing manifest', req: () => ({ method: 'DELETE', url: `/v2/${R}/manifests/${sha('nothing')}` }), status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'DELETE blob', req: () => ({ method: 'DELETE', url: `/v2/other/blobs/${sha(big)}` }), status: 202 },
  { name: 'deleted blob gone from that repo', req: () => ({ method: 'GET', url: `/v2/other/blobs/${sha(big)}` }), status: 404, code: 'BLOB_UNKNOWN' },
  { name: 'still in the first repo', req: () => ({ method: 'HEAD', url: `/v2/${R}/blobs/${sha(big)}` }), status: 200 },
  { name: 'DELETE missing blob', req: () => ({ method: 'DELETE', url: `/v2/other/blobs/${sha(big)}` }), status: 404, code: 'BLOB_UNKNOWN' },
  // method not allowed
  { name: 'POST on a manifest', req: () => ({ method: 'POST', url: `/v2/${R}/manifests/v1` }), status: 405, code: 'UNSUPPORTED' },
  { name: 'unknown endpoint', req: () => ({ method: 'GET', url: `/v2/${R}/whatever` }), status: 404, code: 'UNSUPPORTED' },
  { name: 'not /v2 at all', req: () => ({ method: 'GET', url: `/nothing` }), status: 404, code: 'UNSUPPORTED' },
];

/** With storage.delete.enabled: false */
export const DELETE_DISABLED_STEPS: Step[] = [
  { name: 'push blob', req: () => ({ method: 'POST', url: `/v2/r/blobs/uploads/?digest=${sha(small)}`, headers: { 'content-type': 'application/octet-stream' }, body: small }), status: 201 },
  { name: 'DELETE blob disabled', req: () => ({ method: 'DELETE', url: `/v2/r/blobs/${sha(small)}` }), status: 405, code: 'UNSUPPORTED' },
  { name: 'DELETE manifest disabled', req: () => ({ method: 'DELETE', url: `/v2/r/manifests/latest` }), status: 405, code: 'UNSUPPORTED' },
  { name: 'blob still there', req: () => ({ method: 'HEAD', url: `/v2/r/blobs/${sha(small)}` }), status: 200 },
];
