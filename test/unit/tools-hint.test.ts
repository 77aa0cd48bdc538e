/**
 * The skip message a developer sees without a tool names the Debian packages that provide it, for
 * every tool a test asks for (read from the test sources), and CI installs those packages.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { DEBIAN_PACKAGE, installHint } from '../helpers/tools.js';

const TEST_DIR = resolve(import.meta.dirname, '..');
/** Packages every Debian system has (priority required/important), which .ci/run need not list. */
const BASE_SYSTEM = new Set(['coreutils', 'mount', 'bsdutils', 'npm']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

t.test('the hint names the packages, not a fixed list', async (t) => {
  t.equal(installHint(['docker-compose']), 'apt-get install -y docker-compose');
  t.equal(installHint(['dockerd', 'docker', 'ctr', 'htpasswd']), 'apt-get install -y docker.io containerd apache2-utils', 'one package once');
});

t.test('every tool a test asks for has its package, and CI installs it', async (t) => {
  const asked = new Set<string>();
  for (const file of sources(TEST_DIR)) {
    for (const call of readFileSync(file, 'utf8').matchAll(/missingTools\(([^)]*)\)/g)) {
      for (const literal of call[1]!.matchAll(/'([^']+)'/g)) asked.add(literal[1]!);
    }
  }
  t.ok(asked.has('docker-compose') && asked.has('skopeo'), `found the tools the tests ask for (${asked.size})`);
  const ci = readFileSync(resolve(TEST_DIR, '../.ci/run'), 'utf8');
  const installed = new Set(/packages=\(([^)]*)\)/.exec(ci)![1]!.split(/\s+/).filter(Boolean));
  for (const tool of asked) {
    const pkg = DEBIAN_PACKAGE[tool];
    t.ok(pkg, `${tool}: its package is known`);
    if (pkg) t.ok(installed.has(pkg) || BASE_SYSTEM.has(pkg), `${tool}: .ci/run installs ${pkg}`);
  }
});
