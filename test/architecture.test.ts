/**
 * Imports point downward only (DESIGN.md, "Layers and who may import whom"). This reads every
 * relative import under src/ and fails on one the table does not allow.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';

const SRC = resolve(import.meta.dirname, '../src');

/** area -> areas it may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  'errors.ts': [],
  oci: ['errors.ts'],
  config: ['errors.ts'],
  'log.ts': ['config'],
  'metrics.ts': ['config'],
  storage: ['errors.ts', 'oci', 'config'],
  metadata: ['errors.ts', 'config'],
  notify: ['errors.ts', 'config', 'metadata', 'metrics.ts'],
  registry: ['errors.ts', 'oci', 'storage', 'metadata', 'config', 'notify'],
  upstream: ['errors.ts', 'oci', 'config', 'metrics.ts'],
  policy: ['errors.ts', 'oci', 'config', 'auth', 'registry', 'metadata', 'upstream', 'metrics.ts', 'notify'],
  proxy: ['errors.ts', 'oci', 'config', 'registry', 'upstream', 'metadata', 'storage', 'metrics.ts', 'notify', 'policy'],
  health: ['errors.ts', 'config', 'storage', 'metrics.ts'],
  auth: ['errors.ts', 'oci', 'config'],
  http: ['errors.ts', 'oci', 'config', 'registry', 'proxy', 'storage', 'metrics.ts', 'health', 'notify', 'auth', 'policy'],
  ui: ['errors.ts', 'oci', 'config', 'metadata', 'registry', 'proxy', 'upstream', 'auth', 'http', 'bundle', 'metrics.ts'],
  'app.ts': ['errors.ts', 'oci', 'config', 'registry', 'proxy', 'upstream', 'http', 'metrics.ts', 'log.ts', 'health', 'notify', 'auth', 'ui', 'policy'],
  'security.ts': ['auth', 'http', 'config'],
  lifecycle: ['errors.ts', 'oci', 'config', 'storage', 'metadata', 'registry', 'metrics.ts'],
  bundle: ['errors.ts', 'oci', 'config', 'storage', 'metadata', 'registry', 'proxy', 'policy'],
  'main.ts': ['*'],
  cli: ['*'],
  'cli.ts': ['*'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const areaOf = (file: string): string => relative(SRC, file).split('/')[0]!;

t.test('src/ imports follow the layer table', async (t) => {
  const violations: string[] = [];
  const all = files(SRC);
  t.ok(all.length > 20, 'found the sources');
  for (const file of all) {
    const from = areaOf(file);
    const allowed = ALLOWED[from];
    if (!allowed) { violations.push(`${relative(SRC, file)}: area "${from}" is not in the layer table`); continue; }
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gm)) {
      const to = areaOf(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
      if (to === from || allowed.includes('*') || allowed.includes(to)) continue;
      violations.push(`${relative(SRC, file)} imports ${m[1]} (area ${to})`);
    }
  }
  t.same(violations, [], 'no upward or sideways imports');
});
