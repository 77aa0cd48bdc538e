/**
 * A real OpenStack Swift ("Swift All In One", single node, one replica) on free loopback ports,
 * started from Debian's packages inside the test that needs it: memcached, the account,
 * container and object servers, and a proxy whose pipeline has s3api (S3 API), tempauth
 * (auth v1.0), tempurl and slo. Each call gets its own directory, rings and ports, so test files
 * can run in parallel; share one instance per test file (it takes a few seconds to start).
 *
 * Credentials: Swift user `test:tester` / `testing` (auth v1.0 at `${url}/auth/v1.0`); the same
 * pair is the S3 access key and secret (region us-east-1, path-style).
 * See ../shared/reference/swift-s3.md for the facts this recipe rests on.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, missingToolsFrom, sleep } from './tools.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';

/**
 * A one-replica Swift can answer 404 to a GET racing an overwrite of the same object: its object
 * server deletes the old file between the GET's directory listing and its open. With replicas,
 * the proxy asks another one. Torn reads are still failures.
 */
export const SINGLE_REPLICA_RACE = 'single-replica Swift: a GET racing an overwrite can get 404';

export const SWIFT_USER = 'test:tester';
export const SWIFT_KEY = 'testing';
export const SWIFT_REGION = 'us-east-1';

export interface SwiftServer {
  /** Proxy base URL, e.g. http://127.0.0.1:PORT (S3 endpoint and Swift API). */
  url: string;
  /** Auth v1.0 URL for the native Swift API. */
  authUrl: string;
  /** The temp-URL key set on the test account (for Swift temp URLs). */
  tempUrlKey: string;
  dir: string;
  /** Creates a container (= S3 bucket); names are unique per caller. */
  createContainer(name: string): Promise<void>;
  /** A fresh auth token and storage URL. */
  auth(): Promise<{ token: string; storageUrl: string }>;
  /** Stops the proxy only (the store is "down"); startProxy() brings it back on the same port. */
  stopProxy(): Promise<void>;
  startProxy(): Promise<void>;
  stop(): Promise<void>;
}

/** Tools a Swift-backed test needs; under CI=true their absence is a failure (see tools.ts). */
export const SWIFT_TOOLS = ['swift-proxy-server', 'swift-object-server', 'swift-container-server', 'swift-account-server', 'memcached'];

export function missingSwift(): string | undefined {
  return missingToolsFrom('swift swift-proxy swift-account swift-container swift-object python3-swiftclient memcached', SWIFT_TOOLS);
}

const RING_SCRIPT = `
import sys
from swift.common.ring import RingBuilder
out, ports = sys.argv[1], sys.argv[2:]
for kind, port in zip(('account', 'container', 'object'), ports):
    b = RingBuilder(8, 1, 1)
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'weight': 1.0, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'meta': ''})
    b.rebalance()
    b.save('%s/%s.builder' % (out, kind))
    b.get_ring().save('%s/%s.ring.gz' % (out, kind))
`;

function backendConf(kind: string, dir: string, port: number): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
swift_dir = ${dir}
devices = ${dir}/devices
mount_check = false
disable_fallocate = true
log_name = ${kind}-server
log_level = WARNING
log_address = /dev/null

[pipeline:main]
pipeline = ${kind}-server

[app:${kind}-server]
use = egg:swift#${kind}

[${kind}-replicator]
[${kind}-auditor]
[${kind}-updater]
`;
}

function proxyConf(dir: string, port: number, memcachedPort: number): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
swift_dir = ${dir}
log_name = proxy-server
log_level = WARNING
log_address = /dev/null

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${memcachedPort}
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
methods = GET HEAD PUT POST DELETE
[filter:s3api]
use = egg:swift#s3api
location = ${SWIFT_REGION}
s3_acl = false
allow_multipart_uploads = true
min_segment_size = 5242880
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = ${SWIFT_KEY} .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
`;
}

function spawnLogged(cmd: string, args: string[], log: Buffer[]): ChildProcess {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout?.on('data', (d: Buffer) => { log.push(d); if (log.length > 200) log.shift(); });
  p.stderr?.on('data', (d: Buffer) => { log.push(d); if (log.length > 200) log.shift(); });
  return p;
}

function stopProc(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 3000).unref();
  });
}

async function waitFor(url: string, timeoutMs: number, describe: () => string, init?: RequestInit): Promise<Response> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url, init);
      if (r.status < 500) return r;
      await r.arrayBuffer();
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`Swift did not answer ${url} within ${timeoutMs} ms\n${describe()}`);
    await sleep(100);
  }
}

/** Swift's Python servers take 4-6 s to start on an idle machine, 35 s when it is loaded (load 17 on 2 cores). */
const START_TIMEOUT_MS = 120_000;

export async function startSwift(): Promise<SwiftServer> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-swift-'));
  await mkdir(join(dir, 'devices', 'd1'), { recursive: true });
  const [accountPort, containerPort, objectPort, proxyPort, memcachedPort] = await distinctPorts(5);
  await run(PYTHON, ['-c', RING_SCRIPT, dir, String(accountPort), String(containerPort), String(objectPort)]);
  const confs: Array<[string, string]> = [
    ['account', backendConf('account', dir, accountPort!)],
    ['container', backendConf('container', dir, containerPort!)],
    ['object', backendConf('object', dir, objectPort!)],
    ['proxy', proxyConf(dir, proxyPort!, memcachedPort!)],
  ];
  for (const [kind, text] of confs) await writeFile(join(dir, `${kind}-server.conf`), text);
  const log: Buffer[] = [];
  const describe = () => Buffer.concat(log).toString('utf8').slice(-4000);
  const procs: ChildProcess[] = [];
  const memcachedArgs = ['-l', '127.0.0.1', '-p', String(memcachedPort), '-U', '0', '-m', '32'];
  if (process.getuid?.() === 0) memcachedArgs.push('-u', 'root');
  procs.push(spawnLogged('memcached', memcachedArgs, log));
  for (const kind of ['account', 'container', 'object']) {
    procs.push(spawnLogged(`swift-${kind}-server`, [join(dir, `${kind}-server.conf`)], log));
  }
  let proxy: ChildProcess | undefined;
  const url = `http://127.0.0.1:${proxyPort}`;
  const startProxy = async () => {
    proxy = spawnLogged('swift-proxy-server', [join(dir, 'proxy-server.conf')], log);
    await waitFor(`${url}/healthcheck`, START_TIMEOUT_MS, describe);
  };
  const stopAll = async () => {
    await Promise.all([...procs, ...(proxy ? [proxy] : [])].map(stopProc));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await startProxy();
    for (const port of [accountPort, containerPort, objectPort]) await waitFor(`http://127.0.0.1:${port}/healthcheck`, START_TIMEOUT_MS, describe);
  } catch (e) {
    await stopAll();
    throw e;
  }
  const authUrl = `${url}/auth/v1.0`;
  const auth = async () => {
    const r = await waitFor(authUrl, 10_000, describe, { headers: { 'X-Auth-User': SWIFT_USER, 'X-Auth-Key': SWIFT_KEY } });
    await r.arrayBuffer();
    const token = r.headers.get('x-auth-token');
    const storageUrl = r.headers.get('x-storage-url');
    if (r.status !== 200 || !token || !storageUrl) throw new Error(`Swift auth failed: ${r.status}\n${describe()}`);
    return { token, storageUrl };
  };
  const tempUrlKey = 'stowage-test-tempurl-key';
  const { token, storageUrl } = await auth();
  // The account exists once something writes to it (account_autocreate); the temp-URL key is
  // account metadata.
  const meta = await fetch(storageUrl, { method: 'POST', headers: { 'X-Auth-Token': token, 'X-Account-Meta-Temp-URL-Key': tempUrlKey } });
  await meta.arrayBuffer();
  if (meta.status >= 300) throw new Error(`setting the temp URL key failed: ${meta.status}`);
  return {
    url, authUrl, tempUrlKey, dir,
    auth,
    async createContainer(name) {
      const a = await auth();
      const r = await fetch(`${a.storageUrl}/${name}`, { method: 'PUT', headers: { 'X-Auth-Token': a.token } });
      await r.arrayBuffer();
      if (r.status >= 300) throw new Error(`creating container ${name} failed: ${r.status}`);
    },
    async stopProxy() {
      if (proxy) await stopProc(proxy);
      proxy = undefined;
    },
    startProxy,
    stop: stopAll,
  };
}

async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
