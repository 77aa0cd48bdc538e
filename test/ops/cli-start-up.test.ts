/**
 * What the small commands load. `stowage healthcheck` runs every 30 s in the container (the
 * image's HEALTHCHECK), and until 2026-12-03 every command loaded the whole server first (its
 * storage drivers, fastify, undici: ~0.45 CPU-s and ~25 MiB more for each healthcheck). A resolve
 * hook records every module the process imports; the server's modules must not be among them for
 * `version`, `config check` and `healthcheck` (run against a real stowage), and must be for a
 * command that opens the storage (`status`), which shows the hook sees them.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCli, startStowage } from '../helpers/procs.js';

const work = mkdtempSync(join(tmpdir(), 'stowage-cli-start-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

// The hook runs on its own thread (module.register); it appends each resolved URL to a file.
writeFileSync(join(work, 'hook.mjs'), `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.LOADED_LOG, r.url + '\\n');
  return r;
}
`);
writeFileSync(join(work, 'register.mjs'), `import { register } from 'node:module';
register(${JSON.stringify(new URL(`file://${join(work, 'hook.mjs')}`).href)});
`);

let runs = 0;
/** Runs a command with the hook; its exit code, output and the URLs of every module it imported. */
async function loaded(args: string[]) {
  const log = join(work, `loaded-${++runs}.txt`);
  writeFileSync(log, '');
  const r = await runCli(args, { env: { NODE_OPTIONS: `--import=${join(work, 'register.mjs')}`, LOADED_LOG: log }, timeoutMs: 60_000 });
  return { ...r, urls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

/** The server's own modules and its libraries that a small command has no use for. */
const SERVER = [/\/dist\/main\.js$/, /\/dist\/app\.js$/, /\/dist\/storage\/drivers\//, /\/node_modules\/fastify\//, /\/node_modules\/undici\//, /\/node_modules\/better-sqlite3\//];
const serverModules = (urls: string[]) => urls.filter((u) => SERVER.some((re) => re.test(u)));

t.test('version, config check and healthcheck do not load the server', { timeout: 120_000 }, async (t) => {
  const stowage = await startStowage();
  t.teardown(() => stowage.stop());

  const version = await loaded(['version']);
  t.equal(version.code, 0, version.stderr);
  t.match(version.stdout, /^stowage \d+\.\d+\.\d+/);
  t.ok(version.urls.some((u) => u.endsWith('/dist/cli/version.js')), 'the hook saw the command\'s own module');
  t.same(serverModules(version.urls), [], 'version');

  const check = await loaded(['config', 'check', '--config', stowage.configFile!]);
  t.equal(check.code, 0, check.stderr);
  t.same(serverModules(check.urls), [], 'config check');

  const health = await loaded(['healthcheck', stowage.configFile!]);
  t.equal(health.code, 0, health.stderr);
  t.match(health.stdout, /^healthy: /, 'the running stowage answered healthy');
  t.same(serverModules(health.urls), [], 'healthcheck');
});

t.test('a command that opens the storage loads it (the hook sees the server\'s modules)', { timeout: 120_000 }, async (t) => {
  const stowage = await startStowage();
  t.teardown(() => stowage.stop());
  const status = await loaded(['status', '--config', stowage.configFile!]);
  t.equal(status.code, 0, status.stderr);
  t.ok(status.urls.some((u) => /\/dist\/main\.js$/.test(u)), 'status loaded main.js');
  t.ok(status.urls.some((u) => /\/dist\/storage\/drivers\//.test(u)), 'and a storage driver');
});
