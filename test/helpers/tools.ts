/**
 * External tools the integration tests need. Under CI=true a missing tool is a failure, never a
 * silent skip; on a developer machine the test is skipped with the reason.
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';

export function hasTool(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The Debian package (as .ci/run installs it) that provides each tool the tests ask for. */
export const DEBIAN_PACKAGE: Readonly<Record<string, string>> = {
  'docker-registry': 'docker-registry', skopeo: 'skopeo', openssl: 'openssl', curl: 'curl',
  docker: 'docker.io', dockerd: 'docker.io', containerd: 'containerd', ctr: 'containerd', podman: 'podman',
  'docker-compose': 'docker-compose', debootstrap: 'debootstrap', 'systemd-analyze': 'systemd', htpasswd: 'apache2-utils',
  ip: 'iproute2', nsenter: 'util-linux', unshare: 'util-linux', setpriv: 'util-linux', mount: 'mount', umount: 'mount',
  script: 'bsdutils', chmod: 'coreutils', sha256sum: 'coreutils', npm: 'npm',
};

/** "apt-get install -y ..." naming the packages of `bins` (a tool not in the table: its own name). */
export function installHint(bins: readonly string[]): string {
  return `apt-get install -y ${[...new Set(bins.map((b) => DEBIAN_PACKAGE[b] ?? b))].join(' ')}`;
}

/** Returns a skip reason, or undefined when every tool is there. Throws under CI=true. */
export function missingTools(...bins: string[]): string | undefined {
  return missingToolsFrom(undefined, bins);
}

/**
 * missingTools naming the Debian packages in the install hint (undefined: those of the missing
 * tools, from DEBIAN_PACKAGE). `bins` may be absolute paths (PostgreSQL's binaries are not on PATH).
 */
export function missingToolsFrom(packages: string | undefined, bins: string[]): string | undefined {
  const missing = bins.filter((b) => !hasTool(b));
  if (missing.length === 0) return undefined;
  const message = `missing tools: ${missing.join(', ')} (install: ${packages ? `apt-get install -y ${packages}` : installHint(missing)})`;
  if (process.env.CI === 'true') throw new Error(`${message}; CI=true requires them`);
  return message;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls url until it answers with any HTTP status. */
export async function waitForHttp(url: string, timeoutMs: number, describe: () => string, exited?: () => boolean,
  get: (url: string) => Promise<Response> = fetch): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (exited?.()) throw new Error(`the process serving ${url} exited:\n${describe()}`);
    try {
      const r = await get(url);
      await r.arrayBuffer();
      return;
    } catch {
      if (Date.now() > end) throw new Error(`${url} did not answer within ${timeoutMs} ms\n${describe()}`);
      await sleep(100);
    }
  }
}

export interface Blackhole { url: string; connections(): number; close(): Promise<void> }

/** A server that accepts TCP connections and never answers (an upstream that hangs), counting them. */
export async function startBlackhole(): Promise<Blackhole> {
  const sockets = new Set<import('node:net').Socket>();
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** Polls `check` every 200 ms until it holds; throws after timeoutMs with describe()'s text. */
export async function until(what: string, check: () => boolean, timeoutMs = 30_000, describe = () => ''): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${describe()}`);
    await sleep(200);
  }
}

export const hasExited = (p: import('node:child_process').ChildProcess): boolean => p.exitCode !== null || p.signalCode !== null;

/** Resolves when p has exited; a timer holds the event loop meanwhile, in case p is unref'd. */
export function waitExit(p: import('node:child_process').ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (hasExited(p)) return resolve();
    const hold = setInterval(() => undefined, 1000);
    p.once('exit', () => { clearInterval(hold); resolve(); });
  });
}

/** SIGTERM, then SIGKILL after 8 s; resolves when the process has exited. */
export function stopChild(p: import('node:child_process').ChildProcess | undefined): Promise<void> {
  return new Promise((r) => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return r();
    p.once('exit', () => r());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 8000).unref();
  });
}

/** Runs a client command; resolves with {ok, output} instead of throwing, so refusals can be asserted. */
export async function runClient(cmd: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ ok: true, output: stdout + stderr });
      resolve({ ok: false, output: `${stdout ?? ''}${stderr || err.message}` });
    });
  });
}
