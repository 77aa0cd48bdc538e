/** The metadata suite against the SQLite adapter (in memory, and a file reopened). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SqliteIndex } from '../../src/metadata/sqlite.js';
import { metadataConformance } from './conformance.js';

t.test('sqlite in memory', async (t) => {
  metadataConformance(t, { name: 'sqlite', open: async () => new SqliteIndex(':memory:') });
});

t.test('sqlite file: what was written is there after reopening', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-meta-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'index.sqlite');
  const a = new SqliteIndex(file);
  await a.write((w) => { w.setTag('r/a', 'v1', `sha256:${'1'.repeat(64)}`); w.addOutbox('audit', '{}'); });
  const secret = await a.sharedSecret('token');
  await a.close();
  const b = new SqliteIndex(file);
  t.teardown(() => b.close());
  t.same(await b.listTags('r/a', '', 10), ['v1']);
  t.equal(await b.outbox.count('audit'), 1);
  t.same(await b.sharedSecret('token'), secret, 'the token key survives a restart');
});
