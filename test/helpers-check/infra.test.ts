/**
 * The PostgreSQL and nginx test helpers do what the replica tests rely on: a private cluster
 * that keeps its data across stop/start and kill -9, with no server outliving its test process;
 * nginx round-robins over the backends, streams bodies both ways without buffering them, passes
 * the client's Host, and never replays a PATCH a backend has seen onto another backend.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { missingNginx, startNginx } from '../helpers/nginx.js';
import { missingPostgres, PG_BIN, startPostgres } from '../helpers/postgres.js';
import { isRunning } from '../helpers/scratch.js';
import { freePort, sleep, until } from '../helpers/tools.js';
import { startBackend, type Backend } from './backends.js';

const skipPg = missingPostgres();
const skipNginx = missingNginx();

const alive = isRunning;

t.test('postgres: a private cluster; createDatabase, psql, its DSN; data kept across stop/start and kill -9', { skip: skipPg }, async (t) => {
  const pg = await startPostgres();
  t.teardown(() => pg.destroy());
  t.not(pg.port, 5432, 'not the Debian default cluster');
  t.match(await pg.psql('show server_version_num'), /^15\d{4}\n$/, 'PostgreSQL 15');
  const url = await pg.createDatabase('infra_check');
  t.equal(url, `postgres://postgres@127.0.0.1:${pg.port}/infra_check`);
  // The DSN is what clients get: psql connects with it alone.
  const viaUrl = await promisify(execFile)(join(PG_BIN, 'psql'), [url, '-X', '-At', '-c', 'select current_database(), current_user']);
  t.equal(viaUrl.stdout, 'infra_check|postgres\n');

  await pg.psql('create table notes (id int primary key, body text); insert into notes values (1, \'before stop\')', { database: 'infra_check' });
  const port = pg.port;
  await pg.stop();
  t.equal(pg.pid(), undefined, 'stopped');
  await t.rejects(pg.psql('select 1'), /exited 2/, 'nothing answers while it is stopped');
  await pg.start();
  t.equal(pg.port, port, 'the same port after a restart');
  t.equal(await pg.psql('select body from notes', { database: 'infra_check' }), 'before stop\n', 'data kept across stop/start');

  await pg.psql('insert into notes values (2, \'committed before kill -9\')', { database: 'infra_check' });
  const pid = pg.pid()!;
  await pg.kill9();
  t.notOk(alive(pid), 'the postmaster is gone');
  await pg.start();
  t.equal(await pg.psql('select count(*) from notes', { database: 'infra_check' }), '2\n', 'a committed row survives kill -9 (crash recovery)');
  t.match(pg.log(), /database system was interrupted|not properly shut down/, 'the restart ran crash recovery');
  await t.rejects(pg.psql('select * from no_such_table', { database: 'infra_check' }), /no_such_table/, 'SQL errors reject with psql\'s message');
});

t.test('postgres: clusters started at once by one process each get their own port and data', { skip: skipPg }, async (t) => {
  const [a, b] = await Promise.all([startPostgres(), startPostgres()]);
  t.teardown(async () => { await a.destroy(); await b.destroy(); });
  t.not(a.port, b.port);
  await a.createDatabase('only_in_a');
  t.equal(await b.psql('select count(*) from pg_database where datname = \'only_in_a\''), '0\n');
});

t.test('a test process that dies leaves no server running; one that exits also removes their directories', { skip: skipPg ?? skipNginx }, async (t) => {
  const fixture = join(import.meta.dirname, 'fixtures', 'start-and-wait.ts');
  const loader = import.meta.resolve('@tapjs/typescript/import');
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  for (const ending of ['SIGKILL', 'exit'] as const) {
    const child = spawn(process.execPath, ['--import', loader, fixture], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    await until('the fixture to start PostgreSQL and nginx', () => out.includes('\n'), 120_000, () => out);
    const { pids, dirs } = JSON.parse(out) as { pids: number[]; dirs: string[] };
    t.ok(pids.length > 4 && pids.every(alive), `both servers run (${pids.length} processes with their workers)`);
    if (ending === 'SIGKILL') child.kill('SIGKILL');
    else child.stdin.end('exit\n');
    await new Promise((r) => child.once('exit', r));
    await until(`the servers to go after the test process ${ending === 'SIGKILL' ? 'was killed' : 'exited'}`,
      () => !pids.some(alive), 20_000, () => `still alive: ${pids.filter(alive).join(' ')}`);
    t.pass(`${ending}: PostgreSQL and nginx are gone, workers too`);
    if (ending === 'exit') t.same(dirs.filter((d) => existsSync(d)), [], 'exit: their directories are removed');
    else for (const d of dirs) await promisify(execFile)('rm', ['-rf', d]); // a SIGKILLed process cannot clean up
  }
});

/** One HTTP request through node:http (no client-side retries), with the status and body. */
function send(url: string, method: string, body?: (write: (b: Buffer) => Promise<void>) => Promise<void>,
  headers: Record<string, string> = {}, agent: Agent | false = false): Promise<{ status: number; body: string; error?: Error }> {
  return new Promise((resolve) => {
    const req = request(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', (error) => resolve({ status: 0, body: '', error }));
    const write = (b: Buffer) => new Promise<void>((r, j) => req.write(b, (e) => (e ? j(e) : r())));
    (body ? body(write) : Promise.resolve()).then(() => req.end(), () => req.destroy());
  });
}

async function backends(t: Test, n: number): Promise<Backend[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startBackend()));
  t.teardown(async () => { for (const b of list) await b.close(); });
  return list;
}

t.test('nginx: round robin over three backends, the Host and X-Forwarded-* passed', { skip: skipNginx }, async (t) => {
  const list = await backends(t, 3);
  const lb = await startNginx({ backends: list.map((b) => b.port) });
  t.teardown(() => lb.stop());
  const agent = new Agent({ keepAlive: true, maxSockets: 1 }); // one kept-alive client connection
  t.teardown(() => agent.destroy());
  const servedBy: string[] = [];
  for (let i = 0; i < 9; i++) {
    const r = await send(`${lb.url}/hello`, 'GET', undefined, {}, agent);
    t.equal(r.status, 200);
    servedBy.push(r.body);
  }
  const log = await lb.waitForAccessLog(9);
  t.same(log.map((e) => e.upstreams), servedBy.map((s) => [s]), 'the access log names the backend that answered each request');
  t.same(new Set(servedBy.slice(0, 3)), new Set(list.map((b) => b.addr)), 'three requests in a row reach three backends');
  t.same(servedBy, [...servedBy.slice(0, 3), ...servedBy.slice(0, 3), ...servedBy.slice(0, 3)], 'in turn, always the same order');
  t.equal(new Set(log.map((e) => e.connection)).size, 1, 'one client connection: no affinity to a backend');
  const h = list[0]!.seen[0]!.headers;
  t.equal(h.host, `127.0.0.1:${lb.port}`, 'Host as the client sent it (stowage builds Location from it)');
  t.equal(h['x-forwarded-host'], `127.0.0.1:${lb.port}`);
  t.equal(h['x-forwarded-proto'], 'http');
  t.equal(h['x-forwarded-for'], '127.0.0.1');

  await lb.reload([list[2]!.port]);
  for (let i = 0; i < 3; i++) t.equal(await (await fetch(`${lb.url}/hello`)).text(), list[2]!.addr, 'after reload(): only the new backend');
});

t.test('nginx: request and response bodies stream through, unbuffered', { skip: skipNginx }, async (t) => {
  const [backend] = await backends(t, 1);
  const lb = await startNginx({ backends: [backend!.port] });
  t.teardown(() => lb.stop());
  const MiB = 1024 * 1024;
  for (const framing of ['chunked', 'content-length'] as const) {
    const size = framing === 'chunked' ? 64 * MiB : 8 * MiB;
    const chunk = randomBytes(MiB);
    const hash = createHash('sha256');
    const headers: Record<string, string> = framing === 'content-length' ? { 'content-length': String(size) } : {};
    let seenBeforeEnd = -1;
    const r = await send(`${lb.url}/upload`, 'PATCH', async (write) => {
      await write(chunk);
      hash.update(chunk);
      // Nothing more is sent until the backend has bytes: buffering the body would stall here.
      const record = () => backend!.seen.find((s) => s.method === 'PATCH' && !s.ended);
      await until(`${framing}: the backend to receive bytes while the client is still sending`, () => (record()?.received ?? 0) > 0, 20_000);
      seenBeforeEnd = record()!.received;
      for (let sent = MiB; sent < size; sent += MiB) {
        await write(chunk);
        hash.update(chunk);
      }
    }, headers);
    t.equal(r.status, 200, r.error?.message ?? r.body);
    const answer = JSON.parse(r.body) as { length: number; sha256: string };
    t.ok(seenBeforeEnd > 0 && seenBeforeEnd < size, `${framing}: the backend had ${seenBeforeEnd} bytes before the client finished`);
    t.same(answer, { backend: backend!.addr, length: size, sha256: hash.digest('hex') }, `${framing}: every byte arrived`);
  }
  t.same(readdirSync(join(lb.dir, 'tmp', 'body')), [], 'no request body went to a temp file');

  // The response: the first chunk reaches the client while the backend still holds the rest.
  const got = await new Promise<string>((resolve, reject) => {
    request(`${lb.url}/drip`, { agent: false }, (res) => {
      res.once('data', (d: Buffer) => {
        let text = d.toString();
        backend!.release();
        res.on('data', (more: Buffer) => { text += more.toString(); });
        res.on('end', () => resolve(text));
      });
    }).on('error', reject).end();
  });
  t.equal(got, 'first chunk\nrest\n', 'the first chunk came before the backend released the rest');
});

/** Three backends that all cut the connection on /cut, behind a fresh nginx (no backend marked failed yet). */
async function cutting(t: Test) {
  const list = await backends(t, 3);
  const lb = await startNginx({ backends: list.map((b) => b.port) });
  t.teardown(() => lb.stop());
  return { list, lb, saw: (method: string) => list.filter((b) => b.seen.some((s) => s.method === method)) };
}

/** A body sent in two parts, so the backend has cut the connection before the client is done. */
const twoParts = async (write: (b: Buffer) => Promise<void>) => {
  await write(randomBytes(256 * 1024));
  await sleep(200);
  await write(randomBytes(256 * 1024)).catch(() => undefined);
};

t.test('nginx: a request a backend has seen is never replayed on another if it is a PATCH or has a body; refused connections are', { skip: skipNginx }, async (t) => {
  // Every backend cuts the connection after the first body bytes: a replay would show on a second one.
  for (const method of ['PATCH', 'PUT']) {
    const { lb, saw } = await cutting(t);
    const r = await send(`${lb.url}/cut`, method, twoParts);
    t.equal(r.status, 502, `${method}: the client gets 502`);
    t.equal(saw(method).length, 1, `${method}: one backend saw it, no other`);
    const [entry] = await lb.waitForAccessLog(1);
    t.same(entry!.upstreams, [saw(method)[0]!.addr], `${method}: the access log shows one attempt`);
  }

  // The control: the same failure on a GET is passed on to the next backends, so the checks above
  // can fail. So is a PUT without a body (an upload's closing PUT ?digest=): nginx deems PUT
  // idempotent, so a replica must answer a repeated closing PUT as the first one was answered.
  for (const method of ['GET', 'PUT']) {
    const { lb, saw } = await cutting(t);
    const r = await send(`${lb.url}/cut`, method, undefined, { 'content-length': '0' });
    t.equal(r.status, 502);
    const [entry] = await lb.waitForAccessLog(1);
    t.equal(entry!.upstreams.length, 3, `${method} without a body: tried on every backend: ${entry!.upstreams.join(', ')}`);
    t.equal(saw(method).length, 3);
  }

  // A backend that refuses the connection got nothing, so even a PATCH goes to the next one.
  const dead = await freePort();
  const [live] = await backends(t, 1);
  const lb2 = await startNginx({ backends: [dead, live!.port] });
  t.teardown(() => lb2.stop());
  const results = [];
  for (let i = 0; i < 2; i++) results.push(await send(`${lb2.url}/upload`, 'PATCH', (write) => write(Buffer.from('data'))));
  t.same(results.map((x) => x.status), [200, 200], 'both PATCHes succeed');
  const log2 = await lb2.waitForAccessLog(2);
  t.ok(log2.some((e) => e.upstreams.length === 2 && e.upstreams[0] === `127.0.0.1:${dead}`), 'one went to the dead port first, then on');
  t.equal(live!.seen.filter((s) => s.method === 'PATCH').length, 2);
});
