/**
 * The web page where stowage is meant to run: inside a network namespace with only loopback,
 * with the shipped config (whose default upstream, Docker Hub, is unreachable). Every asset comes
 * from stowage itself, so the pages render completely in Chromium with nothing failing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM, launchBrowser, watch } from '../helpers/browser.js';
import { makeImage, writeOciLayout } from '../helpers/image.js';
import { interfaces, isolate } from '../helpers/netns.js';
import { SHIPPED_CONFIG, startStowageWithFile } from '../helpers/procs.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { missingTools } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (network namespace)'
  : missingTools('ip', 'nsenter', 'skopeo', CHROMIUM);
isolate(skip);
const { default: t } = await import('tap');

t.test('the web page with loopback only', { skip, timeout: 300_000 }, async (t) => {
  t.same(interfaces(), ['lo'], 'loopback only');
  const work = await mkdtemp(join(tmpdir(), 'stowage-iso-ui-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const s = await startStowageWithFile({ file: SHIPPED_CONFIG, cwd: work });
  t.teardown(() => s.stop());
  const image = makeImage({ seed: 901, layers: 2, layerSize: 20_000 });
  await writeOciLayout(join(work, 'layout'), { app: image });
  await skopeoCopy(`oci:${join(work, 'layout')}:app`, `docker://127.0.0.1:${s.port}/team/app:1.0`);

  const browser = await launchBrowser();
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  const w = watch(page);
  for (const [path, heading] of [
    ['/ui/', 'Repositories'],
    ['/ui/r/team/app', 'team/app'],
    [`/ui/r/team/app/-/${image.manifest.digest}`, 'team/app:1.0'],
    ['/ui/cache', 'Cache'],
    ['/ui/airgap', 'Air gap'],
  ]) {
    await page.goto(`${s.url}${path}`);
    t.match(await page.textContent('h1'), heading, `${path} renders`);
    t.ok(await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { styleSheets: { length: number } } }).document;
      return d.styleSheets.length;
    }), `${path}: its stylesheet loaded`);
  }
  await page.goto(`${s.url}/ui/cache`);
  t.match(await page.textContent('#upstreams + table'), /docker\.io/, 'the unreachable default upstream is listed');
  t.same(w.problems, [], 'no console error, no failed request');
});
