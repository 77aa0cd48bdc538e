/** Builds a stowage app in-process (memory storage, in-memory index) for inject and socket tests. */
import type { FastifyInstance } from 'fastify';
import { Agent, request as httpRequest } from 'node:http';
import { buildApp } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { SqliteIndex as MetadataIndex } from '../../src/metadata/sqlite.js';
import { LocalRegistry } from '../../src/registry/registry.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';

export function testConfig(overrides: { deleteEnabled?: boolean } = {}): Config {
  // The schema's defaults for everything not named here.
  const defaults = parseConfig('storage: inmemory', {}, 'test', process.cwd());
  return {
    ...defaults,
    log: { level: 'silent', fields: {} },
    storage: {
      backend: { driver: 'inmemory' },
      delete: { enabled: overrides.deleteEnabled ?? true },
      maintenance: { uploadpurging: { enabled: false, ageMs: 0, intervalMs: 0, dryrun: false }, gc: { enabled: false, intervalMs: 0, graceMs: 0, deleteUntagged: false } },
      redirect: { disable: true },
    },
    http: {
      ...defaults.http, host: '127.0.0.1', port: 0, relativeUrls: false, headers: { 'X-Content-Type-Options': ['nosniff'] },
      timeouts: { headers: 30_000, keepalive: 75_000, body_idle: 60_000 }, max_requests_per_connection: 0, max_concurrent_uploads: 128,
    },
    metadata: { path: ':memory:' },
    upstreams: [],
    groups: {},
  };
}

export interface TestApp {
  app: FastifyInstance;
  registry: LocalRegistry;
  storage: StorageDriver;
  close(): Promise<void>;
}

export function makeApp(overrides: { deleteEnabled?: boolean } = {}): TestApp {
  const config = testConfig(overrides);
  const log = createLogger(config.log);
  const storage = new MemoryDriver();
  const metadata = new MetadataIndex(':memory:');
  const registry = new LocalRegistry(storage, metadata, log);
  const app = buildApp({ config, registry, log });
  return {
    app, registry, storage,
    async close() { await app.close(); metadata.close(); },
  };
}

export interface Res { status: number; headers: Record<string, string>; body: Buffer; json(): any }
export interface Req { method: string; url: string; headers?: Record<string, string>; body?: Buffer | string }
export type Send = (r: Req) => Promise<Res>;

function normalise(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
  return out;
}

function res(status: number, headers: Record<string, unknown>, body: Buffer): Res {
  return { status, headers: normalise(headers), body, json: () => JSON.parse(body.toString('utf8')) };
}

/** fastify.inject transport. */
export function injectSender(app: FastifyInstance): Send {
  return async (r) => {
    const out = await app.inject({ method: r.method as never, url: r.url, headers: r.headers ?? {}, ...(r.body !== undefined ? { payload: r.body } : {}) });
    return res(out.statusCode, out.headers, out.rawPayload);
  };
}

/**
 * Real-socket transport: the app listens on an ephemeral loopback port and requests go out with
 * node:http, which sends the path exactly as given (no dot-segment normalisation), so traversal
 * attempts reach the server as an attacker would send them.
 */
export async function socketSender(app: FastifyInstance): Promise<{ send: Send; base: string }> {
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = new URL(address);
  const send: Send = (r) => new Promise((resolve, reject) => {
    const body = r.body === undefined ? undefined : Buffer.from(r.body);
    const headers: Record<string, string> = { ...(r.headers ?? {}) };
    if (body) headers['content-length'] = String(body.length);
    const req = httpRequest({ host: '127.0.0.1', port: Number(port), method: r.method, path: r.url, headers, agent }, (out) => {
      const parts: Buffer[] = [];
      out.on('data', (c: Buffer) => parts.push(c));
      out.on('end', () => resolve(res(out.statusCode ?? 0, out.headers as Record<string, unknown>, Buffer.concat(parts))));
      out.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  return { send, base: address };
}

const agent = new Agent({ keepAlive: true });

/** Every file path in a driver, for "leaves nothing behind" checks. */
export async function allFiles(storage: StorageDriver, dir = '/'): Promise<string[]> {
  let children: string[];
  try { children = await storage.list(dir); } catch { return []; }
  const out: string[] = [];
  for (const c of children) {
    const info = await storage.stat(c);
    if (info.isDir) out.push(...(await allFiles(storage, c)));
    else out.push(c);
  }
  return out.sort();
}
