/**
 * Azurite (Microsoft's Azure Storage emulator, the npm devDependency `azurite`) serving the Blob
 * API on a free loopback port, its data in a temp directory of its own: parallel-safe, one per
 * test file. The account is Azurite's well-known development account.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, sleep } from './tools.js';

export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const BIN = resolve(import.meta.dirname, '../../node_modules/.bin/azurite-blob');

export interface AzuriteServer {
  /** Blob service URL including the account: http://127.0.0.1:PORT/devstoreaccount1 */
  serviceUrl: string;
  port: number;
  stop(): Promise<void>;
  /** Stops the process but keeps its data; start() brings it back on the same port. */
  pause(): Promise<void>;
  start(): Promise<void>;
}

export async function startAzurite(): Promise<AzuriteServer> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-azurite-'));
  const port = await freePort();
  const log: Buffer[] = [];
  let proc: ChildProcess | undefined;
  const serviceUrl = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const start = async () => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    proc = spawn(process.execPath, [BIN, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dir,
      '--silent', '--skipApiVersionCheck', '--loose', '--disableTelemetry'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    proc.stdout?.on('data', (d: Buffer) => log.push(d));
    proc.stderr?.on('data', (d: Buffer) => log.push(d));
    const end = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`azurite exited: ${Buffer.concat(log).toString()}`);
      try {
        const r = await fetch(`${serviceUrl}?comp=list`);
        await r.arrayBuffer();
        return;
      } catch {
        if (Date.now() > end) throw new Error(`azurite did not start: ${Buffer.concat(log).toString()}`);
        await sleep(100);
      }
    }
  };
  const pause = () => new Promise<void>((done) => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return done();
    p.once('exit', () => done());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 3000).unref();
  });
  await start();
  return {
    serviceUrl, port, start, pause,
    async stop() {
      await pause();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
