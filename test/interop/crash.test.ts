/**
 * kill -9 while uploads are in flight, restart on the same directory: everything acknowledged is
 * intact, nothing partial is visible, and every file under blobs/ hashes to its own name
 * (the scenario is test/helpers/crash.ts; crash-object-stores.test.ts runs it on s3, azure, swift).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { crashRounds } from '../helpers/crash.js';
import { startStowage } from '../helpers/procs.js';

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Every blobs/sha256/xx/<hex>/data must hash to <hex>. */
async function corruptBlobs(root: string): Promise<string[]> {
  const base = join(root, 'docker/registry/v2/blobs/sha256');
  const bad: string[] = [];
  let prefixes: string[] = [];
  try { prefixes = await readdir(base); } catch { return bad; }
  for (const p of prefixes) {
    for (const hex of await readdir(join(base, p))) {
      const files = await readdir(join(base, p, hex));
      for (const f of files) if (f !== 'data') bad.push(`${hex}/${f} (stray file)`);
      if (files.includes('data') && (await hashFile(join(base, p, hex, 'data'))) !== `sha256:${hex}`) bad.push(hex);
    }
  }
  return bad;
}

t.test('kill -9 during uploads loses nothing acknowledged and exposes nothing partial', async (t) => {
  const root = join(await mkdtemp(join(tmpdir(), 'stowage-crash-')), 'data');
  const s = await crashRounds(t, {
    start: () => startStowage({ rootDir: root }),
    corruptBlobs: () => corruptBlobs(root),
    // the bytes of the interrupted monolithic upload on disk
    async partialEvidence() {
      const sessions = join(root, 'docker/registry/v2/repositories/crash/mono/_uploads');
      let partial = 0;
      for (const u of await readdir(sessions).catch(() => [] as string[])) {
        partial += (await stat(join(sessions, u, 'data')).catch(() => ({ size: 0 }))).size;
      }
      return partial;
    },
  });
  await s.stop();
});
