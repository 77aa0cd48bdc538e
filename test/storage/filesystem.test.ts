import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.js';
import { driverConformance } from './conformance.js';

const make = async () => {
  const root = await mkdtemp(join(tmpdir(), 'stowage-fs-'));
  return { driver: new FilesystemDriver({ rootDirectory: root }), root, cleanup: () => rm(root, { recursive: true, force: true }) };
};

driverConformance(t, 'filesystem', make);

t.test('filesystem: no temp file is left or listed', async (t) => {
  const { driver, root, cleanup } = await make();
  t.teardown(cleanup);
  for (let i = 0; i < 20; i++) await driver.putContent('/dir/file', Buffer.from(`v${i}`));
  t.same(await readdir(join(root, 'dir')), ['file'], 'only the file itself on disk');
  t.same(await driver.list('/dir'), ['/dir/file']);
});

t.test('filesystem: a committed writer survives reopening with append', async (t) => {
  const { driver, cleanup } = await make();
  t.teardown(cleanup);
  const w = await driver.writer('/up/data');
  await new Promise<void>((r) => w.stream.write(Buffer.from('part1-'), () => r()));
  await w.commit();
  const again = new FilesystemDriver({ rootDirectory: (driver as unknown as { root: string }).root });
  const w2 = await again.writer('/up/data', { append: true });
  await new Promise<void>((r) => w2.stream.write(Buffer.from('part2'), () => r()));
  await w2.commit();
  t.equal((await again.getContent('/up/data')).toString(), 'part1-part2');
});
