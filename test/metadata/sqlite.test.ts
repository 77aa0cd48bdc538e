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

t.test('sqlite file: a commit by another process reaches this one\'s caches within a second', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-meta-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'index.sqlite');
  const server = new SqliteIndex(file);
  const command = new SqliteIndex(file); // another connection, as `stowage import` beside a server
  t.teardown(async () => { await server.close(); await command.close(); });
  const old = `sha256:${'1'.repeat(64)}`;
  const fresh = `sha256:${'2'.repeat(64)}`;
  await server.write((w) => w.setTagCache('docker.io', 'library/a', 'latest', old, 'application/x', 1));
  t.equal((await server.tagCache('docker.io', 'library/a', 'latest'))?.digest, old, 'read once: now remembered');

  const heard: string[] = [];
  server.changes.subscribe((c) => heard.push(c.kind));
  await command.write((w) => w.setTagCache('docker.io', 'library/a', 'latest', fresh, 'application/x', 2));
  t.equal((await server.tagCache('docker.io', 'library/a', 'latest'))?.digest, old, 'until the poll, the remembered row (so the memo is real)');
  const until = Date.now() + 3_000;
  while (!heard.includes('all') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  t.ok(heard.includes('all'), 'the other connection\'s commit was noticed');
  t.equal((await server.tagCache('docker.io', 'library/a', 'latest'))?.digest, fresh, 'and the new row is read');

  heard.length = 0;
  await server.write((w) => w.setTagCache('docker.io', 'library/a', 'latest', old, 'application/x', 3));
  await new Promise((r) => setTimeout(r, 1_300));
  t.notOk(heard.includes('all'), 'its own commits do not look like another process\'s');
});
