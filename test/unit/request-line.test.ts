/**
 * The request line is written straight to pino's destination (src/http/request-loggers.ts): it must
 * be the very line pino writes for the same fields (same keys, order, escaping, base fields), with
 * client-chosen strings (the URL, an x-request-id) escaped, and unset fields left off. Also through
 * pino.multistream, which wants pino's own write path.
 */
import { pino } from 'pino';
import t from 'tap';
import { createLogger } from '../../src/log.js';
import { requestLineWriter, type RequestLine } from '../../src/http/request-loggers.js';

const TIME = /"time":"[^"]+"/;

function capture(fields: Record<string, string> = { service: 'registry' }) {
  const out: string[] = [];
  const log = createLogger({ level: 'info', fields }, { write: (s: string) => void out.push(s) });
  return { log, out };
}

const full: RequestLine = {
  reqId: 'id "quoted" \\ back\nslash', method: 'GET', url: '/v2/a/b/manifests/x?ns="évil"\u0001', repo: 'team/app', user: 'ann "o\'" b',
  reference: 'v1.0', status: 200, cache: 'hit', bytes: 1747, upstreamBytes: 12, redirected: false, ms: 0.3, aborted: true,
};

t.test('the same line pino writes for the same fields', async (t) => {
  for (const [what, line, baseFields] of [
    ['every field, hostile strings', full, { service: 'registry', 'we"ird': 'v\\' }],
    ['unset fields left off', { ...full, repo: undefined, user: undefined, reference: undefined, status: undefined, cache: undefined, upstreamBytes: undefined, redirected: undefined, aborted: false }, {}],
  ] as const) {
    const direct = capture(baseFields);
    requestLineWriter(direct.log).write(line);
    const viaPino = capture(baseFields);
    const fields = Object.fromEntries(Object.entries(line).filter(([k, v]) => v !== undefined && !(k === 'aborted' && v === false)));
    viaPino.log.child({}, { redact: [] }).info(fields, 'request');
    t.equal(direct.out.length, 1, `${what}: one write`);
    t.equal(direct.out[0]!.replace(TIME, ''), viaPino.out[0]!.replace(TIME, ''), `${what}: byte for byte, but for the time`);
    const parsed = JSON.parse(direct.out[0]!) as Record<string, unknown>;
    t.equal(parsed.url, line.url, `${what}: the URL survives escaping`);
    t.equal(parsed.reqId, line.reqId, `${what}: the request id survives escaping`);
    t.ok(!Number.isNaN(Date.parse(parsed.time as string)), `${what}: an ISO time`);
  }
});

t.test('enabled() follows the logger level', async (t) => {
  const { log, out } = capture();
  const writer = requestLineWriter(log);
  t.equal(writer.enabled(), true);
  log.level = 'warn';
  t.equal(writer.enabled(), false);
  t.same(out, []);
});

t.test('through pino.multistream: pino writes the line', async (t) => {
  const out: string[] = [];
  const log = createLogger({ level: 'info', fields: {} }, pino.multistream([{ level: 'info', stream: { write: (s: string) => void out.push(s) } }]));
  requestLineWriter(log).write(full);
  t.equal(out.length, 1);
  t.match(JSON.parse(out[0]!), { level: 'info', reqId: full.reqId, url: full.url, status: 200, aborted: true, msg: 'request' });
});
