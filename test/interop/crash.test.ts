/**
 * kill -9 while uploads are in flight, restart on the same directory: everything acknowledged is
 * intact, nothing partial is visible, and every file under blobs/ hashes to its own name.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { crashRounds } from '../helpers/crash.js';
import { startStowage } from '../helpers/procs.js';

t.test('kill -9 during uploads loses nothing acknowledged and exposes nothing partial', async (t) => {
  const dataDir = join(await mkdtemp(join(tmpdir(), 'stowage-crash-')), 'data');
  await crashRounds(t, dataDir, () => startStowage({ rootDir: dataDir }));
});
