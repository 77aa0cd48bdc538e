/**
 * nginx (Debian's `nginx`) as a plain round-robin load balancer in front of N backends, with no
 * affinity, the way replicas of a registry are run behind one: each call gets its own prefix
 * directory (config, pid, temp dirs, logs) and a free loopback port, so test files run in
 * parallel. The master is our child (`daemon off`), started through `setpriv --pdeathsig TERM` so
 * it never outlives the test process.
 *
 * What the configuration is for (see `conf()`):
 * - HTTP/1.1 with keep-alive to the backends; request and response bodies stream both ways
 *   (`proxy_request_buffering off`, `proxy_buffering off`, `client_max_body_size 0`), so a
 *   multi-GiB PATCH or blob GET never lands in a temp file or in memory.
 * - The client's Host header is passed unchanged (`$http_host`, with the port), and so are
 *   X-Forwarded-Host/-Proto/-For and X-Real-IP: stowage builds its Location headers from
 *   X-Forwarded-Proto and X-Forwarded-Host or Host (src/http/context.ts locationFor), so they
 *   point at the balancer, and the next request of the upload may go to any replica.
 * - `proxy_next_upstream error timeout`, written out on purpose: a request moves to the next
 *   backend when connecting fails (nothing was sent: safe for any method, PATCH included) and,
 *   for methods nginx deems idempotent (GET, HEAD, PUT, DELETE, OPTIONS), when the backend fails
 *   before its response header. POST and PATCH are never passed on once sent (no
 *   `non_idempotent`), nor is any request whose streamed body nginx has started sending (it keeps
 *   no copy): a PATCH that reached a replica which then died is never replayed onto another; the
 *   client gets 502 and decides. A bodiless PUT or DELETE can be replayed (an upload's closing
 *   `PUT ?digest=` included), so replicas must answer a repeat as they answered the first.
 *   Once response bytes have gone to the client nothing is retried: the client sees a cut
 *   connection. No `http_5xx` conditions: a replica's own 503 is passed on.
 *   infra.test.ts checks each of these. A failed backend is skipped for `failTimeoutSeconds`.
 * - The upstream keep-alive timeout (60 s) is below stowage's http.timeouts.keepalive (75 s), so
 *   nginx drops an idle connection before the backend does and never sends a PATCH on a
 *   connection the backend is closing (which nginx could not retry).
 * - The access log is one JSON object per line with `$upstream_addr`: which backend(s) served it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { atExit, forgetScratchDir, killTree, scratchDir } from './scratch.js';
import { freePort, hasExited, missingToolsFrom, sleep, waitExit } from './tools.js';

const NGINX = 'nginx';

/** Why nginx cannot run here (a skip reason), or undefined. Throws under CI=true. */
export function missingNginx(): string | undefined {
  return missingToolsFrom('nginx', [NGINX]);
}

/** A backend: a port on 127.0.0.1, or "host:port". */
export type Backend = number | string;

export interface NginxOptions {
  backends: Backend[];
  /** Worker processes (default 1). The round-robin state is in a shared zone, so the order holds with more. */
  workers?: number;
  /** Failures before a backend is skipped, and for how long (nginx's max_fails, fail_timeout; defaults 1 and 2 s). */
  maxFails?: number;
  failTimeoutSeconds?: number;
  /** How long nginx keeps an idle backend connection (default 60 s: keep it below the backends' own). */
  upstreamKeepaliveSeconds?: number;
  /**
   * A static file server instead of a balancer (a CDN in front of a registry's storage): files
   * under `root`, Range honoured unless `maxRanges` is 0 (nginx then answers 200 with the whole
   * file), each connection paced at `limitRate` (nginx's limit_rate, e.g. "2m") if given.
   * `backends` is ignored.
   */
  static?: { root: string; maxRanges?: number; limitRate?: string };
}

export interface AccessEntry {
  /** Seconds since the epoch, with milliseconds ($msec, at the end of the request). */
  time: number;
  method: string;
  /** The request URI as the client sent it. */
  uri: string;
  status: number;
  /** Every backend tried, in order ("127.0.0.1:PORT"): more than one when nginx passed the request on. */
  upstreams: string[];
  /** $upstream_status as nginx wrote it ("502, 200" after a retry; "" when no backend was asked). */
  upstreamStatus: string;
  /** Bytes of the request (line, headers and body) and of the response. */
  requestLength: number;
  bytesSent: number;
  requestTime: number;
  /** nginx's connection serial number: equal for requests on one client connection. */
  connection: number;
  host: string;
  /** The request's Range header and the response's Content-Range ("" when none). */
  range: string;
  contentRange: string;
}

export interface Nginx {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** The prefix directory (nginx.conf, logs, temp dirs). */
  readonly dir: string;
  /** The master's pid while it runs. */
  pid(): number | undefined;
  /** The access log so far, one entry per finished request (nginx writes a line when a request ends). */
  accessLog(): AccessEntry[];
  /** Resolves with the access log once it has at least `count` entries (default timeout 10 s). */
  waitForAccessLog(count: number, timeoutMs?: number): Promise<AccessEntry[]>;
  errorLog(): string;
  /** Points nginx at other backends (SIGHUP); resolves once new workers run and the old ones stopped accepting (their in-flight requests finish). */
  reload(backends: Backend[]): Promise<void>;
  /** Fast shutdown (SIGTERM); resolves once the master has exited; removes the directory. */
  stop(): Promise<void>;
}

const LOG_FORMAT = JSON.stringify({
  time: '$msec', method: '$request_method', uri: '$request_uri', status: '$status', upstream: '$upstream_addr',
  upstreamStatus: '$upstream_status', requestLength: '$request_length', bytesSent: '$bytes_sent',
  requestTime: '$request_time', connection: '$connection', host: '$http_host',
  range: '$http_range', contentRange: '$sent_http_content_range',
});

const backendAddr = (b: Backend) => (typeof b === 'number' ? `127.0.0.1:${b}` : b);

/** Everything both configurations share: process, files, the JSON access log, temp paths; up to inside `http {`. */
function preamble(dir: string, o: NginxOptions, events: string): string {
  const root = process.getuid?.() === 0;
  return `${root ? 'user root;\n' : ''}worker_processes ${o.workers ?? 1};
pid ${dir}/nginx.pid;
lock_file ${dir}/nginx.lock;
error_log ${dir}/error.log notice;
${events}
http {
  log_format stowage_json escape=json '${LOG_FORMAT}';
  access_log ${dir}/access.log stowage_json;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;`;
}

function conf(dir: string, port: number, backends: Backend[], o: NginxOptions): string {
  if (o.static) return staticConf(dir, port, o.static, o);
  if (backends.length === 0) throw new Error('nginx: at least one backend');
  const servers = backends.map((b) => `    server ${backendAddr(b)} max_fails=${o.maxFails ?? 1} fail_timeout=${o.failTimeoutSeconds ?? 2}s;`);
  return `${preamble(dir, o, 'worker_rlimit_nofile 16384;\nevents { worker_connections 4096; }')}

  upstream replicas {
    zone replicas 64k;
${servers.join('\n')}
    keepalive 64;
    keepalive_timeout ${o.upstreamKeepaliveSeconds ?? 60}s;
    keepalive_requests 100000;
  }

  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    client_body_timeout 3600s;
    send_timeout 3600s;
    keepalive_timeout 75s;
    keepalive_requests 100000;
    # Bearer tokens and registry headers can be long.
    large_client_header_buffers 8 64k;

    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_redirect off;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
      proxy_connect_timeout 5s;
      proxy_send_timeout 3600s;
      proxy_read_timeout 3600s;
      proxy_next_upstream error timeout;
    }
  }
}
`;
}

function staticConf(dir: string, port: number, st: NonNullable<NginxOptions['static']>, o: NginxOptions): string {
  return `${preamble(dir, o, 'events { worker_connections 1024; }')}
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 100000;
    location / {
      root ${st.root};
${st.maxRanges !== undefined ? `      max_ranges ${st.maxRanges};\n` : ''}${st.limitRate ? `      limit_rate ${st.limitRate};\n` : ''}    }
  }
}
`;
}

function parseEntry(line: string): AccessEntry {
  const r = JSON.parse(line) as Record<string, string>;
  const num = (k: string) => Number(r[k] ?? NaN);
  return {
    time: num('time'), method: r.method ?? '', uri: r.uri ?? '', status: num('status'),
    // "a, b" after a retry to the next backend; "a : b" after an internal redirect.
    upstreams: (r.upstream ?? '').split(/\s*,\s*|\s+:\s+/).filter(Boolean),
    upstreamStatus: r.upstreamStatus ?? '', requestLength: num('requestLength'), bytesSent: num('bytesSent'),
    requestTime: num('requestTime'), connection: num('connection'), host: r.host ?? '',
    range: r.range ?? '', contentRange: r.contentRange ?? '',
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const dir = await scratchDir('stowage-nginx-');
  await mkdir(join(dir, 'tmp'));
  const confFile = join(dir, 'nginx.conf');
  const errorFile = join(dir, 'error.log');
  const accessFile = join(dir, 'access.log');
  const readText = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
  const base = ['-p', dir, '-c', confFile, '-e', errorFile];
  let port = 0;
  let proc: ChildProcess | undefined;
  let unregister: () => void = () => undefined;

  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    await writeFile(confFile, conf(dir, port, options.backends, options));
    const out = openSync(join(dir, 'nginx.out'), 'a');
    const p = spawn('setpriv', ['--pdeathsig', 'TERM', NGINX, ...base, '-g', 'daemon off;'], { stdio: ['ignore', out, out] });
    closeSync(out);
    p.unref();
    const pid = p.pid!;
    unregister = atExit(() => killTree(pid));
    const end = Date.now() + 20_000;
    while (!hasExited(p) && !(await canConnect(port))) {
      if (Date.now() > end) {
        killTree(pid);
        throw new Error(`nginx did not listen on ${port} within 20 s:\n${readText(errorFile).slice(-3000)}`);
      }
      await sleep(50);
    }
    if (!hasExited(p)) {
      proc = p;
      break;
    }
    unregister();
    const log = readText(errorFile) + readText(join(dir, 'nginx.out'));
    // Another test took the port between freePort() and bind(): try a new one.
    if (!/Address already in use/.test(log) || attempt >= 5) throw new Error(`nginx exited (${p.exitCode ?? p.signalCode}):\n${log.slice(-3000)}`);
  }

  const accessLog = () => readText(accessFile).split('\n').filter((l) => l.startsWith('{')).map(parseEntry);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    pid: () => (proc && !hasExited(proc) ? proc.pid : undefined),
    accessLog,
    async waitForAccessLog(count, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const entries = accessLog();
        if (entries.length >= count) return entries;
        if (Date.now() > end) throw new Error(`nginx access log has ${entries.length} entries, expected ${count}`);
        await sleep(20);
      }
    },
    errorLog: () => readText(errorFile),
    async reload(backends) {
      await writeFile(confFile, conf(dir, port, backends, options));
      await promisify(execFile)(NGINX, ['-t', '-q', ...base]).catch((e: { stderr?: string }) => {
        throw new Error(`nginx: the new configuration is invalid: ${e.stderr ?? String(e)}`);
      });
      const logged = readText(errorFile).length;
      proc!.kill('SIGHUP');
      const end = Date.now() + 20_000;
      // The master starts new workers, then each old one logs "gracefully shutting down", stops
      // accepting and closes its idle client connections (in-flight requests run to their end).
      // Only then does every new request reach the new backends.
      const done = () => {
        const text = readText(errorFile).slice(logged);
        return /start worker process/.test(text) && text.split('gracefully shutting down').length - 1 >= (options.workers ?? 1);
      };
      while (!done()) {
        if (Date.now() > end) throw new Error(`nginx did not reload within 20 s:\n${readText(errorFile).slice(-3000)}`);
        await sleep(20);
      }
      await sleep(50);
    },
    async stop() {
      const p = proc!;
      if (!hasExited(p)) {
        p.kill('SIGTERM');
        const timer = setTimeout(() => killTree(p.pid!), 10_000);
        await waitExit(p);
        clearTimeout(timer);
      }
      unregister();
      forgetScratchDir(dir);
    },
  };
}
