/**
 * Upload purging (storage.maintenance.uploadpurging) in a real stowage process: an abandoned
 * session is removed with its bytes, a session a registry:2 left in the data directory too, while
 * a slow upload that keeps sending bytes survives and completes; dryrun only reports.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sha256 } from '../helpers/image.js';
import { startStowage, type Proc } from '../helpers/procs.js';
import { sleep } from '../helpers/tools.js';

const uploadsOf = (p: Proc, repo: string) => join(p.rootDir, 'docker/registry/v2/repositories', repo, '_uploads');

async function startUpload(base: string, repo: string, bytes: Buffer): Promise<string> {
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await post.arrayBuffer();
  const location = new URL(post.headers.get('location')!, base).toString();
  const patch = await fetch(location, { method: 'PATCH', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  await patch.arrayBuffer();
  return new URL(patch.headers.get('location')!, base).toString();
}

/** A session directory as registry:2 writes it, started an hour ago, unknown to stowage's index. */
function plantForeignSession(p: Proc, repo: string, uuid: string): string {
  const dir = join(uploadsOf(p, repo), uuid);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'data'), 'partial');
  writeFileSync(join(dir, 'startedat'), new Date(Date.now() - 3_600_000).toISOString());
  return dir;
}

const purging = (dryrun: boolean) => ({ storage: { maintenance: { uploadpurging: { enabled: true, age: '2s', interval: '1s', dryrun } } } });

t.test('abandoned sessions go, active ones stay', async (t) => {
  const server = await startStowage({ config: purging(false) });
  t.teardown(() => server.stop());
  const foreign = plantForeignSession(server, 'old/repo', '3f9e1c2a-0000-4000-8000-000000000001');
  const abandoned = await startUpload(server.url, 'team/abandoned', Buffer.from('first half'));
  const body = Buffer.alloc(3000, 7);
  let active = await startUpload(server.url, 'team/active', body.subarray(0, 1000));
  // Keep the active session busy for longer than `age`, one chunk a second.
  for (let i = 1; i < 3; i++) {
    await sleep(1000);
    const res = await fetch(active, { method: 'PATCH', body: body.subarray(i * 1000, (i + 1) * 1000), headers: { 'content-type': 'application/octet-stream' } });
    await res.arrayBuffer();
    t.equal(res.status, 202, `chunk ${i} accepted`);
    active = new URL(res.headers.get('location')!, server.url).toString();
  }
  await sleep(1500);
  const gone = await fetch(abandoned);
  t.equal(gone.status, 404, 'the abandoned session is unknown');
  t.match(await gone.json(), { errors: [{ code: 'BLOB_UPLOAD_UNKNOWN' }] });
  t.same(existsSync(uploadsOf(server, 'team/abandoned')) ? readdirSync(uploadsOf(server, 'team/abandoned')) : [], [], 'its bytes are gone');
  t.notOk(existsSync(foreign), "registry:2's abandoned session is gone too");
  const url = new URL(active);
  url.searchParams.set('digest', sha256(body));
  const done = await fetch(url, { method: 'PUT' });
  await done.arrayBuffer();
  t.equal(done.status, 201, 'the slow upload survived and completed');
  t.ok(server.logs().some((l) => l.msg === 'purged abandoned upload sessions'), 'logged');
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  t.match(metrics, /stowage_uploads_purged_total [1-9]/);
});

t.test('dryrun reports and removes nothing', async (t) => {
  const server = await startStowage({ config: purging(true) });
  t.teardown(() => server.stop());
  const foreign = plantForeignSession(server, 'old/repo', '3f9e1c2a-0000-4000-8000-000000000002');
  const abandoned = await startUpload(server.url, 'team/abandoned', Buffer.from('x'));
  await sleep(4000);
  t.ok(existsSync(foreign), 'left in place');
  const res = await fetch(abandoned);
  await res.arrayBuffer();
  t.equal(res.status, 204, 'the session is still there');
  t.ok(server.logs().some((l) => l.msg === 'upload purge (dry run): would remove'), 'reported');
});
