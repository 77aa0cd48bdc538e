/**
 * stdout is written asynchronously, lines gathered for up to LOG_HANDOVER_MS (src/log.ts): the
 * lines a process logged just before it exits or dies are still written, and a process that keeps
 * running writes its lines without waiting for more. A child node process imports
 * the built logger (npm test builds first), logs, and ends in each way; every line must arrive.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { childEnv } from '../helpers/procs.js';

const LOG = resolve(import.meta.dirname, '../../dist/log.js');

function run(ending: string): { lines: Array<Record<string, unknown>>; status: number | null; markAfterLines: boolean } {
  const script = `import { createLogger, flushLog } from ${JSON.stringify(pathToFileURL(LOG).href)};
const log = createLogger({ level: 'info', fields: {} });
for (let i = 0; i < 500; i++) log.info({ i }, 'line');
${ending}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: childEnv(), encoding: 'utf8' });
  const out = r.stdout.split('\n');
  const lines = out.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: r.status, lines, markAfterLines: out.indexOf('MARK') > out.findLastIndex((l) => l.startsWith('{')) };
}

t.test('the last lines are written however the process ends', { skip: existsSync(LOG) ? undefined : 'dist/ is missing: npm run build' }, async (t) => {
  for (const [how, ending, status] of [
    ['process.exit in the same turn', 'process.exit(3);', 3],
    ['flushLog, then process.exit (what serve does)', 'flushLog(log); process.exit(0);', 0],
    ['an uncaught exception', "setTimeout(() => { log.fatal('dying'); throw new Error('boom'); }, 5);", 1],
    ['the event loop running empty', '', 0],
  ] as const) {
    const r = run(ending);
    t.equal(r.status, status, `${how}: exit status`);
    t.same(r.lines.filter((l) => l.msg === 'line').map((l) => l.i), Array.from({ length: 500 }, (_, i) => i), `${how}: every line, in order`);
    if (ending.includes('fatal')) t.ok(r.lines.some((l) => l.msg === 'dying' && l.level === 'fatal'), `${how}: the fatal line too`);
  }
});

t.test('a running process writes its lines soon, not at exit', { skip: existsSync(LOG) ? undefined : 'dist/ is missing: npm run build' }, async (t) => {
  // The marker is written synchronously 300 ms later: the line logged before it must come first.
  const r = run("const { writeSync } = await import('node:fs'); setTimeout(() => { writeSync(1, 'MARK\\n'); process.exit(0); }, 300);");
  t.equal(r.status, 0);
  t.equal(r.lines.length, 500, 'every line');
  t.ok(r.markAfterLines, 'the lines reached stdout before the marker written 300 ms later');
});
