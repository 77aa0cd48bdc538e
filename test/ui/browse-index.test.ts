/** The BrowseIndex suite (browse-suite.ts) on the SQLite adapter, over a real index file. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { browseSuite, seed } from './browse-suite.js';

t.test('SQLite BrowseIndex', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-browse-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const metadata = new MetadataIndex(join(dir, 'index.sqlite'));
  t.teardown(() => metadata.close());
  await seed(metadata);
  await browseSuite(t, metadata.browse);
});
