/**
 * The web page in a real browser (Debian's Chromium through playwright-core), on stowage from
 * dist/cli.js with htpasswd users and access rules, holding real content: images pushed with
 * skopeo, a referrer pushed over HTTP, and an image cached from Debian's registry:2 through a
 * skopeo pull. Anonymous, read-only and admin viewers see what the rules allow and nothing more;
 * pages load with no console error and no failed request; a label holding <script> is text;
 * axe-core finds no serious violation; a pull command copied from the page pulls with skopeo.
 * Screenshots of each page go to docs/screenshots/ (the README shows them) with
 * STOWAGE_SCREENSHOTS=update.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import type { Browser, Page } from 'playwright-core';
import { axe, CHROMIUM, launchBrowser, navigationTimes, watch } from '../helpers/browser.js';
import {
  makeImage, makeIndex, makeReferrer, pushBlobHttp, pushManifestHttp, sha256, writeOciLayout, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, type Image,
} from '../helpers/image.js';
import { startRegistry2, startStowage, type Proc } from '../helpers/procs.js';
import { skopeo, skopeoCopy } from '../helpers/skopeo.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools('skopeo', 'docker-registry', 'htpasswd', CHROMIUM);
/**
 * The README's screenshots are rewritten only when asked (STOWAGE_SCREENSHOTS=update): they show
 * times and ports that differ on every run. Otherwise they are taken all the same, into a temp dir.
 */
const UPDATE_SCREENSHOTS = process.env.STOWAGE_SCREENSHOTS === 'update';
const PASSWORDS = { admin: 'admin-secret-1', reader: 'reader-secret-2' };
const XSS = '<script>window.__injected = 1</script><img src=x onerror="window.__injected = 2">';

/** An image whose config has an entrypoint, labels (one of them hostile), env and history. */
function labelledImage(seed: number): Image {
  const base = makeImage({ seed, layers: 2, layerSize: 20_000 });
  const diffIds = (JSON.parse(base.config.bytes.toString()) as { rootfs: unknown }).rootfs;
  const configBytes = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2026-11-30T12:00:00Z', author: 'the test suite',
    config: { Entrypoint: ['/bin/app', '--serve'], Cmd: ['--port', '8080'], Env: ['PATH=/usr/bin', 'MODE=test'], WorkingDir: '/srv',
      Labels: { 'org.opencontainers.image.title': 'app', 'evil.label': XSS } },
    rootfs: diffIds,
    history: [{ created: '2026-11-30T12:00:00Z', created_by: 'ADD layer-one /' }, { created: '2026-11-30T12:00:01Z', created_by: 'RUN make install' }],
  }));
  const config = { bytes: configBytes, digest: sha256(configBytes) };
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: configBytes.length },
    layers: base.layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.bytes.length })),
    annotations: { 'org.opencontainers.image.source': 'https://example.invalid/app' },
  }));
  return { ...base, config, manifest: { bytes: manifestBytes, digest: sha256(manifestBytes), mediaType: OCI_MANIFEST } };
}

t.test('the web page in Chromium', { skip, timeout: 600_000 }, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'stowage-ui-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const SCREENSHOTS = UPDATE_SCREENSHOTS ? resolve(import.meta.dirname, '../../docs/screenshots') : work;
  const htpasswd = join(work, 'htpasswd');
  execFileSync('htpasswd', ['-B', '-b', '-c', '-C', '5', htpasswd, 'admin', PASSWORDS.admin], { stdio: 'ignore' });
  execFileSync('htpasswd', ['-B', '-b', '-C', '5', htpasswd, 'reader', PASSWORDS.reader], { stdio: 'ignore' });

  const upstream = await startRegistry2();
  t.teardown(() => upstream.stop());
  const layout = join(work, 'layout');
  const app = labelledImage(801);
  const tool = makeIndex([
    makeImage({ seed: 802, layers: 2, layerSize: 10_000, platform: { architecture: 'amd64', os: 'linux' } }),
    makeImage({ seed: 803, layers: 2, layerSize: 10_000, platform: { architecture: 'arm64', os: 'linux' } }),
  ]);
  const busybox = makeImage({ seed: 804, layers: 3, layerSize: 30_000 });
  await writeOciLayout(layout, { app, tool, busybox });
  await skopeoCopy(`oci:${layout}:busybox`, `docker://127.0.0.1:${upstream.port}/library/busybox:1.36`);

  const s: Proc = await startStowage({
    config: {
      auth: { htpasswd: { realm: 'stowage', path: htpasswd } },
      access: [
        { repository: 'mirror.test/**', pull: ['anonymous'], delete: ['admin'] },
        { repository: 'team/public/**', pull: ['anonymous'], push: ['admin'], delete: ['admin'] },
        { repository: 'team/**', pull: ['reader', 'admin'], push: ['admin'], delete: ['admin'] },
      ],
      upstreams: [{ name: 'mirror.test', url: upstream.url }],
    },
  });
  t.teardown(() => s.stop());
  const host = `127.0.0.1:${s.port}`;
  const admin = `--dest-creds=admin:${PASSWORDS.admin}`;
  await skopeoCopy(`oci:${layout}:app`, `docker://${host}/team/app:1.0`, [admin]);
  await skopeoCopy(`oci:${layout}:tool`, `docker://${host}/team/public/tool:2`, [admin]);
  // A signature of team/app:1.0, pushed over HTTP as cosign or notation would.
  const basic = { authorization: `Basic ${Buffer.from(`admin:${PASSWORDS.admin}`).toString('base64')}` };
  const sig = makeReferrer(app.manifest, 1);
  for (const b of [sig.config, ...sig.layers]) await pushBlobHttp(s.url, 'team/app', b, basic);
  await pushManifestHttp(s.url, 'team/app', sig.manifest.digest, sig.manifest.bytes, sig.manifest.mediaType, basic);
  // Cached from the upstream by an anonymous pull through the prefix route.
  await skopeoCopy(`docker://${host}/mirror.test/library/busybox:1.36`, `oci:${join(work, 'pulled')}:bb`);

  const browser: Browser = await launchBrowser();
  t.teardown(() => browser.close());

  /** A fresh browser context (its own cookies), signed in as `user` when given. */
  const open = async (user?: keyof typeof PASSWORDS): Promise<{ page: Page; problems: string[]; bytes: () => number }> => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    t.teardown(() => context.close());
    const page = await context.newPage();
    const w = watch(page);
    if (user) {
      await page.goto(`${s.url}/ui/login`);
      await page.fill('#username', user);
      await page.fill('#password', PASSWORDS[user]);
      await Promise.all([page.waitForURL(`${s.url}/ui/`), page.click('form.login button[type=submit]')]);
      t.match(await page.textContent('.account'), `Signed in as ${user}`, `${user} is signed in`);
    }
    return { page, ...w };
  };
  const listed = async (page: Page) => page.$$eval('table.list tbody tr td:first-child a', (as) => as.map((a) => a.textContent));

  await t.test('anonymous: only what anonymous may pull, and the pages load cleanly', async (t) => {
    const { page, problems, bytes } = await open();
    await page.goto(`${s.url}/`);
    t.equal(new URL(page.url()).pathname, '/ui/', '/ redirects to /ui/');
    t.comment(`first page: ${await navigationTimes(page)}; ${bytes()} bytes on first load (HTML, CSS, script, with headers)`);
    t.same((await listed(page)).sort(), ['mirror.test/library/busybox', 'team/public/tool'], 'team/app is not listed');
    t.match(await page.textContent('.summary'), /^2 repositories/, 'and not counted');
    t.equal((await page.request.get(`${s.url}/_stowage/api/repositories/team/app`)).status(), 401, 'nor served by the API');
    const api = await (await page.request.get(`${s.url}/_stowage/api/repositories`)).json() as { items: Array<{ name: string }> };
    t.same(api.items.map((i) => i.name).sort(), ['mirror.test/library/busybox', 'team/public/tool'], 'the API lists the same');
    const hidden = await page.request.get(`${s.url}/ui/r/team/app`);
    t.equal(hidden.status(), 404, 'the repository page of team/app is not shown');
    t.notMatch(await hidden.text(), /1\.0/, 'nor anything of it');
    const headers = (await page.request.get(`${s.url}/ui/`)).headers();
    t.match(headers['content-security-policy'], /script-src 'self'/, 'CSP');
    t.notMatch(headers['content-security-policy'], /unsafe-inline/, 'no inline script or style allowed');
    t.equal(headers['x-content-type-options'], 'nosniff');
    t.equal(headers['x-frame-options'], 'DENY');
    for (const path of ['/ui/', '/ui/r/team/public/tool', '/ui/cache', '/ui/airgap', '/ui/login']) await page.goto(`${s.url}${path}`);
    t.same(problems, [], 'no console error, no failed request');
  });

  await t.test('search finds a repository', async (t) => {
    const { page, problems } = await open();
    await page.goto(`${s.url}/ui/`);
    await page.fill('#q', 'busy');
    await Promise.all([page.waitForURL(/q=busy/), page.press('#q', 'Enter')]);
    t.same(await listed(page), ['mirror.test/library/busybox']);
    t.same(problems, []);
  });

  await t.test('read-only user: sees team/app, no delete', async (t) => {
    const { page, problems } = await open('reader');
    t.same((await listed(page)).sort(), ['mirror.test/library/busybox', 'team/app', 'team/public/tool']);
    await page.goto(`${s.url}/ui/r/team/app`);
    t.equal(await page.$$eval('button.danger', (b) => b.length), 0, 'no delete buttons');
    const res = await page.request.delete(`${s.url}/_stowage/api/repositories/team/app/-/manifests/1.0`, { headers: { origin: s.url } });
    t.equal(res.status(), 403, 'and the API refuses a delete');
    t.same(problems, []);
  });

  await t.test('a click goes from repository to tag to image to its layers; labels are text', async (t) => {
    const { page, problems } = await open('admin');
    await page.click('a[href="/ui/r/team/app"]');
    await page.waitForURL(`${s.url}/ui/r/team/app`);
    t.equal(await page.textContent('h1'), 'team/app');
    await page.screenshot({ path: join(SCREENSHOTS, 'repository.png') });
    await page.click('table.tags th[scope=row] a');
    await page.waitForURL(`${s.url}/ui/r/team/app/-/${app.manifest.digest}`);
    const layers = await page.$$eval('table.layers tbody tr', (rows) => rows.map((r) => r.textContent ?? ''));
    t.equal(layers.length, 2, 'two layers listed');
    t.ok(layers.every((l) => l.includes('stored')), 'both stored');
    const evil = await page.$eval('table.kv th:text-is("evil.label") + td', (td) => td.textContent);
    t.equal(evil, XSS, 'the hostile label is shown as text');
    t.equal(await page.evaluate(() => (globalThis as unknown as { __injected?: number }).__injected), undefined, 'and never ran');
    t.equal(await page.$$eval('script', (s) => s.length), 1, 'the page has its one script only');
    const text = await page.textContent('main') ?? '';
    for (const want of ['"/bin/app","--serve"', 'MODE=test', 'RUN make install', '2026-11-30T12:00:00Z', 'application/vnd.example.signature']) {
      t.ok(text.includes(want), `shows ${want}`);
    }
    await page.screenshot({ path: join(SCREENSHOTS, 'image.png'), fullPage: true });
    t.same(problems, []);
  });

  await t.test('a pull command copied from the page pulls with skopeo', async (t) => {
    const { page, problems } = await open();
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.url });
    await page.goto(`${s.url}/ui/r/team/public/tool`);
    t.match(await page.textContent('table.tags'), /linux\/amd64, linux\/arm64/, 'platforms of the index');
    const button = page.locator('#pull-top-3 + button.copy');
    await button.click();
    const copied = await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText());
    t.match(copied, new RegExp(`^skopeo copy --src-tls-verify=false docker://${host}/team/public/tool:2 oci-archive:tool.tar$`));
    const args = copied.split(' ').slice(1).map((a) => (a.startsWith('oci-archive:') ? `oci-archive:${join(work, 'copied.tar')}` : a));
    await skopeo(args);
    const inspected = JSON.parse(await skopeo(['inspect', '--raw', `oci-archive:${join(work, 'copied.tar')}`])) as { layers?: unknown[] };
    t.ok(inspected.layers?.length, 'the pulled image is there');
    t.same(problems, []);
  });

  await t.test('admin deletes a tag from the page', async (t) => {
    const { page, problems } = await open('admin');
    await skopeoCopy(`oci:${layout}:app`, `docker://${host}/team/app:old`, [admin]);
    await page.goto(`${s.url}/ui/r/team/app`);
    page.once('dialog', (d) => void d.accept());
    await Promise.all([page.waitForEvent('load'), page.click('button[data-delete-ref="old"]')]);
    const tags = await page.$$eval('table.tags th[scope=row]', (ths) => ths.map((th) => th.textContent));
    t.same(tags, ['1.0'], 'the tag is gone');
    t.same(problems, []);
  });

  await t.test('pull counts and the cache page', async (t) => {
    for (let i = 0; i < 3; i++) await skopeoCopy(`docker://${host}/mirror.test/library/busybox:1.36`, `oci:${join(work, `again-${i}`)}:bb`);
    const { page, problems } = await open('admin');
    // Counts are flushed every 5 s, so a flush may have taken some of the pulls and not yet the rest.
    let pulls = '';
    for (let i = 0; i < 40 && pulls !== '4'; i++) {
      await page.goto(`${s.url}/ui/r/mirror.test/library/busybox`);
      pulls = (await page.textContent('table.tags td:nth-child(8)'))?.trim() ?? '';
      if (pulls !== '4') await new Promise((r) => setTimeout(r, 500));
    }
    t.equal(pulls, '4', 'four pulls of busybox:1.36 counted');
    t.match(await page.textContent('.summary'), /cached from mirror\.test/);
    await page.screenshot({ path: join(SCREENSHOTS, 'tags.png') });
    await page.goto(`${s.url}/ui/cache`);
    const tiles = await page.textContent('.tiles') ?? '';
    t.match(tiles, /Hit ratio\s*[1-9]\d*\.\d %/, 'a hit ratio');
    t.match(await page.textContent('#upstreams + table'), /mirror\.test.*closed/s, 'the upstream and its circuit');
    t.match(await page.textContent('main'), /mirror\.test\/library\/busybox:1\.36/, 'in the largest or most pulled images');
    await page.screenshot({ path: join(SCREENSHOTS, 'cache.png'), fullPage: true });
    await page.goto(`${s.url}/ui/airgap?since=7d`);
    t.match(await page.textContent('.tiles'), /Images\s*[1-9]/, 'the air-gap preview lists what was pulled');
    await page.screenshot({ path: join(SCREENSHOTS, 'airgap.png') });
    await page.goto(`${s.url}/ui/`);
    await page.screenshot({ path: join(SCREENSHOTS, 'repositories.png') });
    t.same(problems, []);
  });

  await t.test('axe-core: no serious or critical violations', async (t) => {
    const { page } = await open('admin');
    for (const path of ['/ui/', '/ui/r/team/app', `/ui/r/team/app/-/${app.manifest.digest}`, `/ui/r/team/public/tool/-/${tool.digest}`, '/ui/cache', '/ui/airgap', '/ui/login']) {
      await page.goto(`${s.url}${path}`);
      const violations = await axe(page);
      const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      t.same(serious, [], `${path}: ${violations.length === 0 ? 'no violations' : violations.map((v) => `${v.id} (${v.impact})`).join(', ')}`);
    }
  });

  const shots = await readFile(join(SCREENSHOTS, 'repositories.png')).catch(() => undefined);
  t.ok(shots && shots.length > 1000, 'screenshots written');
});
