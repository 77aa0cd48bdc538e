/**
 * 10,000 repositories: the first page, a group, a search and page 2 in Chromium, and the JSON
 * API, with and without access rules (which make every name be checked). Times are measured and
 * printed, never asserted (this machine is shared; bench/ is where figures are compared); what is
 * asserted is that every view lists and counts the right repositories.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { AccessPolicy } from '../../src/auth/access.js';
import { createLogger } from '../../src/log.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { UpstreamRouter } from '../../src/proxy/routing.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { UpstreamClient } from '../../src/upstream/client.js';
import { testConfig } from '../helpers/app.js';
import { CHROMIUM, launchBrowser, navigationTimes, watch } from '../helpers/browser.js';
import { sha256 } from '../helpers/image.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools(CHROMIUM);
const LOCAL = 4000;
const HUB = 5000;
const GHCR = 1000;

const NAMES = [
  ...Array.from({ length: LOCAL }, (_, i) => `team-${i % 40}/app-${i}`),
  ...Array.from({ length: HUB }, (_, i) => `docker.io/library/image-${i}`),
  ...Array.from({ length: GHCR }, (_, i) => `ghcr.io/org/tool-${i}`),
];

/** Fills the index as pushes and cache fills would: a repository, a manifest, a tag and two blobs each. */
async function populate(metadata: MetadataIndex, names: readonly string[]): Promise<void> {
  await metadata.write((w) => {
    names.forEach((name, i) => {
      const cached = !name.startsWith('team-');
      const upstream = cached ? name.slice(0, name.indexOf('/')) : undefined;
      const manifest = sha256(`manifest ${i}`);
      const layer = sha256(`layer ${i}`);
      const config = sha256(`config ${i}`);
      w.recordBlob(manifest, 500, cached ? 'cached' : 'local', upstream);
      w.recordBlob(layer, 1_000_000 + i, cached ? 'cached' : 'local', upstream);
      w.recordBlob(config, 700, cached ? 'cached' : 'local', upstream);
      w.setManifestType(manifest, 'application/vnd.oci.image.manifest.v1+json');
      w.addRepository(name);
      w.recordManifest(name, manifest, cached ? 'cached' : 'local', [{ digest: config, kind: 'config' }, { digest: layer, kind: 'layer' }]);
      w.setTag(name, 'latest', manifest);
      if (!cached) w.markLocal(name);
    });
  });
}

t.test('10,000 repositories', { skip, timeout: 300_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-ui-scale-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = { ...testConfig(), defaultUpstream: 'docker.io' };
  const log = createLogger(config.log);
  const metadata = new MetadataIndex(join(dir, 'index.sqlite'));
  const filled = Date.now();
  await populate(metadata, NAMES);
  t.comment(`index filled with ${LOCAL + HUB + GHCR} repositories in ${Date.now() - filled} ms`);
  const registry = new LocalRegistry(new MemoryDriver(), metadata, log);
  const upstreams = ['docker.io', 'ghcr.io'].map((name) => {
    const cfg = { ...config, name, url: 'http://127.0.0.1:9', tagTtlMs: 0, negativeTtlMs: 0, revalidateTimeoutMs: 0, connectTimeoutMs: 100, headersTimeoutMs: 100,
      bodyTimeoutMs: 100, maxConcurrent: 1, contentTtlMs: 0, breakerFailures: 3, breakerCooldownMs: 1000 };
    return { config: cfg, client: new UpstreamClient(cfg, { log }) };
  });
  const router = new UpstreamRouter(upstreams, 'docker.io');
  const browse = metadata.browse;

  const serve = async (policy?: AccessPolicy) => {
    const app = buildApp({ config, registry, log, ui: { browse, router, sessionSecret: () => metadata.sharedSecret('ui-session') }, ...(policy ? { policy } : {}) });
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    t.teardown(() => app.close());
    return address;
  };
  const open = await serve();
  // Anonymous may pull the cache of Docker Hub and one team's repositories: every name is checked.
  const ruled = await serve(new AccessPolicy({ rules: [
    { repository: 'docker.io/**', pull: ['anonymous'] },
    { repository: 'team-7/**', pull: ['anonymous'] },
  ] }));
  t.teardown(async () => { await Promise.all(upstreams.map((u) => u.client.close())); metadata.close(); });

  const browser = await launchBrowser();
  t.teardown(() => browser.close());

  const count = (visible: (n: string) => boolean) => ({
    all: NAMES.filter(visible).length,
    local: NAMES.filter((n) => n.startsWith('team-') && visible(n)).length,
    search: NAMES.filter((n) => n.includes('-7') && visible(n)).length,
  });
  for (const [label, base, expected] of [
    ['no access rules', open, count(() => true)],
    ['access rules (every name checked)', ruled, count((n) => n.startsWith('docker.io/') || n.startsWith('team-7/'))],
  ] as const) {
    await t.test(label, async (t) => {
      const context = await browser.newContext();
      t.teardown(() => context.close());
      const page = await context.newPage();
      const w = watch(page);
      const visits: Array<[string, string, number]> = [
        ['first page', '/ui/', expected.all],
        ['first page again (warm)', '/ui/', expected.all],
        ['pushed group', '/ui/?group=local', expected.local],
        ['search "-7"', '/ui/?q=-7', expected.search],
      ];
      for (const [what, path, total] of visits) {
        await page.goto(`${base}${path}`);
        const summary = await page.textContent('.summary') ?? '';
        t.equal(Number(/^[\d,]+/.exec(summary.trim())?.[0].replace(/,/g, '')), total, `${what}: ${total} repositories counted`);
        t.comment(`${label}, ${what}: ${await navigationTimes(page)}; ${summary.trim()}`);
      }
      await page.goto(`${base}/ui/`);
      const first = await page.$$eval('table.list tbody tr', (r) => r.length);
      t.equal(first, 50, 'a page of 50');
      await Promise.all([page.waitForLoadState('load'), page.click('a[rel=next]')]);
      t.ok(new URL(page.url()).searchParams.get('after'), 'page 2 by name');
      t.comment(`${label}, page 2: ${await navigationTimes(page)}`);
      const started = process.hrtime.bigint();
      const res = await fetch(`${base}/_stowage/api/repositories?limit=100`);
      const body = await res.json() as { total: number; items: unknown[] };
      t.comment(`${label}, API first 100: ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(1)} ms`);
      t.equal(body.total, expected.all, 'the API counts the same');
      t.equal(body.items.length, 100);
      t.same(w.problems, [], 'no console error, no failed request');
    });
  }
});
