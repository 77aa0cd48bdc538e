/**
 * Loads the configuration: YAML in registry:2's config.yml shape (plus stowage's own keys), then
 * registry:2-style REGISTRY_* environment overrides, validated once into the typed Config.
 * Every problem is one ConfigError line naming the key: "config: http.addr: expected ...".
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { Config, LogLevel, UpstreamConfig } from './schema.js';
import { parseGoDuration } from './duration.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The embedded defaults: what config/config.yml says, so `stowage serve` without a file runs the same. */
export const DEFAULT_CONFIG_YAML = `
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: ./data
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
http:
  addr: :5000
upstreams:
  - name: docker.io
    url: https://registry-1.docker.io
    tag_ttl: 5m
default_upstream: docker.io
`;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** registry:2 sections (and sub-keys) stowage accepts and ignores. */
const IGNORED_TOP = new Set(['health', 'notifications', 'redis', 'validation', 'compatibility', 'reporting', 'middleware', 'loglevel']);
/** Storage driver sections registry:2 knows; stowage implements filesystem and inmemory. */
const DRIVERS = ['filesystem', 'inmemory', 's3', 'azure', 'gcs', 'swift', 'oss'];
const LOG_LEVELS: Record<string, LogLevel> = {
  fatal: 'fatal', panic: 'fatal', error: 'error', warn: 'warn', warning: 'warn', info: 'info', debug: 'debug', trace: 'trace', silent: 'silent',
};

/** Leaf keys that REGISTRY_* variables may set, with their type. */
const ENV_KEYS: Array<[string[], 'string' | 'bool' | 'duration']> = [
  [['version'], 'string'],
  [['log', 'level'], 'string'],
  [['log', 'formatter'], 'string'],
  [['storage', 'filesystem', 'rootdirectory'], 'string'],
  [['storage', 'delete', 'enabled'], 'bool'],
  [['storage', 'maintenance', 'uploadpurging', 'enabled'], 'bool'],
  [['storage', 'maintenance', 'uploadpurging', 'age'], 'duration'],
  [['storage', 'maintenance', 'uploadpurging', 'interval'], 'duration'],
  [['storage', 'maintenance', 'uploadpurging', 'dryrun'], 'bool'],
  [['http', 'addr'], 'string'],
  [['http', 'host'], 'string'],
  [['http', 'secret'], 'string'],
  [['http', 'relativeurls'], 'bool'],
  [['proxy', 'remoteurl'], 'string'],
  [['proxy', 'username'], 'string'],
  [['proxy', 'password'], 'string'],
  [['proxy', 'ttl'], 'duration'],
  [['metadata', 'path'], 'string'],
  [['default_upstream'], 'string'],
];

export interface LoadOptions { file?: string; env?: NodeJS.ProcessEnv; cwd?: string }

export function loadConfig(options: LoadOptions = {}): Config {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? {};
  if (options.file === undefined) return parseConfig(DEFAULT_CONFIG_YAML, env, '(defaults)', cwd);
  let text: string;
  try {
    text = readFileSync(resolve(cwd, options.file), 'utf8');
  } catch (e) {
    throw new ConfigError(`config: cannot read ${options.file}: ${(e as Error).message}`);
  }
  return parseConfig(text, env, options.file, cwd);
}

export function parseConfig(yamlText: string, env: NodeJS.ProcessEnv, source: string, cwd: string): Config {
  const doc = parseDocument(yamlText, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    const where = pos ? ` line ${pos.line}, column ${pos.col}` : '';
    const what = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`config: ${source}${where}: ${what}`);
  }
  const raw = doc.toJS() ?? {};
  if (!isObj(raw)) throw new ConfigError(`config: ${source}: expected a mapping at the top level`);
  // registry:2 also accepts a bare driver name: `storage: inmemory`.
  if (typeof raw.storage === 'string') raw.storage = { [raw.storage]: {} };
  const fromEnv = new Set<string>();
  applyEnv(raw, env, fromEnv);
  return new Reader(fromEnv, cwd).config(raw);
}

function applyEnv(raw: Obj, env: NodeJS.ProcessEnv, fromEnv: Set<string>): void {
  // REGISTRY_STORAGE=inmemory|filesystem picks the driver, as in registry:2 (other drivers' keys go).
  const driver = env.REGISTRY_STORAGE;
  if (driver !== undefined) {
    if (driver !== 'filesystem' && driver !== 'inmemory') {
      throw new ConfigError(`config (REGISTRY_STORAGE): expected filesystem or inmemory (the storage drivers stowage has), got ${JSON.stringify(driver)}`);
    }
    const storage = isObj(raw.storage) ? raw.storage : {};
    for (const d of DRIVERS) if (d !== driver) delete storage[d];
    if (!isObj(storage[driver])) storage[driver] = {};
    raw.storage = storage;
    fromEnv.add(`storage.${driver}`);
  }
  for (const [path, type] of ENV_KEYS) {
    const name = `REGISTRY_${path.join('_').toUpperCase()}`;
    const value = env[name];
    if (value === undefined) continue;
    let node = raw;
    for (const key of path.slice(0, -1)) {
      if (!isObj(node[key])) node[key] = {};
      node = node[key] as Obj;
    }
    const leaf = path[path.length - 1]!;
    node[leaf] = type === 'bool' && (value === 'true' || value === 'false') ? value === 'true' : value;
    fromEnv.add(path.join('.'));
    if (path[1] === 'filesystem') {
      // Naming a filesystem root selects the filesystem driver, as in registry:2.
      const storage = raw.storage as Obj;
      for (const d of DRIVERS) if (d !== 'filesystem') delete storage[d];
    }
  }
}

class Reader {
  constructor(private readonly fromEnv: Set<string>, private readonly cwd: string) {}

  private fail(key: string, problem: string): never {
    // storage.<driver> is set by REGISTRY_STORAGE; every other key by its own variable.
    const envName = /^storage\.[^.]+$/.test(key)
      ? 'REGISTRY_STORAGE'
      : `REGISTRY_${key.replace(/\[\d+\]/g, '').split('.').join('_').toUpperCase()}`;
    // Keys come from the file, so escape control characters: the message stays one line.
    const shownKey = key.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
    throw new ConfigError(this.fromEnv.has(key) ? `config (${envName}): ${problem}` : `config: ${shownKey}: ${problem}`);
  }

  /** A scalar as a string (numbers and booleans too), for string maps such as log.fields. */
  private scalar(v: unknown, key: string): string {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
    this.fail(key, `expected a string, got ${this.show(v)}`);
  }

  private show(v: unknown): string {
    return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
  }

  private obj(v: unknown, key: string, allowed: string[], ignored: string[] = []): Obj {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) this.fail(key, `expected a mapping, got ${this.show(v)}`);
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k) && !ignored.includes(k)) this.fail(key ? `${key}.${k}` : k, 'unknown key');
    }
    return v;
  }

  private str(v: unknown, key: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number') return String(v);
    if (typeof v !== 'string') this.fail(key, `expected a string, got ${this.show(v)}`);
    return v;
  }

  private bool(v: unknown, key: string, fallback: boolean): boolean {
    if (v === undefined || v === null) return fallback;
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    this.fail(key, `expected a boolean, got ${this.show(v)}`);
  }

  private duration(v: unknown, key: string, fallback: number): number {
    if (v === undefined || v === null) return fallback;
    if (v === 0) return 0;
    if (typeof v === 'string') {
      try {
        return parseGoDuration(v);
      } catch {
        // reported below
      }
    }
    this.fail(key, `expected a duration such as "30s", "5m" or "168h", got ${this.show(v)}`);
  }

  private int(v: unknown, key: string, fallback: number, min: number, max: number): number {
    if (v === undefined || v === null) return fallback;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) this.fail(key, `expected a whole number from ${min} to ${max}, got ${this.show(v)}`);
    return n;
  }

  config(raw: Obj): Config {
    const top = this.obj(raw, '', ['version', 'log', 'storage', 'http', 'proxy', 'metadata', 'upstreams', 'default_upstream', 'auth'], [...IGNORED_TOP]);
    const version = this.str(top.version, 'version') ?? '0.1';
    if (version !== '0.1') this.fail('version', `expected 0.1, got ${this.show(top.version)}`);
    if (top.auth !== undefined && top.auth !== null) {
      this.fail('auth', 'not supported yet: stowage would run without the access control this section asks for; put an authenticating proxy in front');
    }

    const log = this.obj(top.log, 'log', ['level', 'formatter', 'fields', 'accesslog', 'hooks']);
    const levelText = (this.str(log.level, 'log.level') ?? 'info').toLowerCase();
    const level = LOG_LEVELS[levelText];
    if (!level) this.fail('log.level', `expected one of error, warn, info, debug, trace, fatal, silent, got ${this.show(log.level)}`);
    const formatter = this.str(log.formatter, 'log.formatter');
    if (formatter !== undefined && !['json', 'text', 'logstash'].includes(formatter)) this.fail('log.formatter', `expected json, text or logstash, got ${this.show(formatter)}`);
    const fieldsRaw = log.fields === undefined || log.fields === null ? {} : log.fields;
    if (!isObj(fieldsRaw)) this.fail('log.fields', `expected a mapping of strings, got ${this.show(fieldsRaw)}`);
    const fields: Record<string, string> = {};
    for (const [k, v] of Object.entries(fieldsRaw)) fields[k] = this.scalar(v, `log.fields.${k}`);

    const storage = this.obj(top.storage, 'storage', [...DRIVERS, 'delete', 'maintenance', 'cache', 'redirect', 'tag']);
    const drivers = ['filesystem', 'inmemory'].filter((d) => storage[d] !== undefined);
    const unsupported = Object.keys(storage).filter((k) => DRIVERS.includes(k) && !drivers.includes(k));
    if (unsupported.length > 0) this.fail(`storage.${unsupported[0]}`, 'storage driver not supported (filesystem and inmemory are)');
    if (drivers.length > 1) this.fail('storage', `exactly one storage driver may be configured, got ${drivers.join(' and ')}`);
    let backend: Config['storage']['backend'];
    if (drivers[0] === 'inmemory') {
      backend = { driver: 'inmemory' };
    } else {
      const fsCfg = this.obj(storage.filesystem, 'storage.filesystem', ['rootdirectory', 'maxthreads']);
      const root = this.str(fsCfg.rootdirectory, 'storage.filesystem.rootdirectory') ?? './data';
      if (root === '') this.fail('storage.filesystem.rootdirectory', 'must not be empty');
      backend = { driver: 'filesystem', rootdirectory: resolve(this.cwd, root) };
    }
    const del = this.obj(storage.delete, 'storage.delete', ['enabled']);
    const maintenance = this.obj(storage.maintenance, 'storage.maintenance', ['uploadpurging', 'readonly']);
    const purge = this.obj(maintenance.uploadpurging, 'storage.maintenance.uploadpurging', ['enabled', 'age', 'interval', 'dryrun']);
    const p = 'storage.maintenance.uploadpurging';

    const http = this.obj(top.http, 'http', ['addr', 'host', 'relativeurls', 'secret', 'headers', 'net', 'debug', 'prefix', 'tls', 'http2', 'h2c', 'draintimeout']);
    const { host, port } = this.addr(this.str(http.addr, 'http.addr') ?? ':5000');
    const net = this.str(http.net, 'http.net');
    if (net !== undefined && net !== 'tcp') this.fail('http.net', `only tcp is supported, got ${this.show(net)}`);
    if (http.tls !== undefined && http.tls !== null) this.fail('http.tls', 'not supported: terminate TLS in front of stowage');
    const prefix = this.str(http.prefix, 'http.prefix');
    if (prefix !== undefined && prefix !== '/' && prefix !== '') this.fail('http.prefix', 'not supported: serve stowage at the root of its host');
    const externalHost = this.str(http.host, 'http.host');
    if (externalHost !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(externalHost)) this.fail('http.host', `expected an http(s):// URL without a path, got ${this.show(externalHost)}`);
    const secret = this.str(http.secret, 'http.secret');
    const headers: Record<string, string[]> = {};
    if (http.headers !== undefined && http.headers !== null) {
      if (!isObj(http.headers)) this.fail('http.headers', 'expected a mapping of header name to a list of values');
      for (const [name, v] of Object.entries(http.headers)) {
        if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) this.fail(`http.headers.${name}`, 'invalid header name');
        const values: unknown[] = Array.isArray(v) ? v : [v];
        headers[name] = values.map((x, i) => this.scalar(x, Array.isArray(v) ? `http.headers.${name}[${i}]` : `http.headers.${name}`));
      }
    }

    const meta = this.obj(top.metadata, 'metadata', ['path']);
    const metaPath = this.str(meta.path, 'metadata.path');
    const metadataPath = metaPath !== undefined ? (metaPath === ':memory:' ? metaPath : resolve(this.cwd, metaPath))
      : backend.driver === 'filesystem' ? resolve(backend.rootdirectory, 'stowage.sqlite') : ':memory:';

    const upstreams = this.upstreams(top);
    const defaultUpstream = this.str(top.default_upstream, 'default_upstream')
      ?? (top.proxy !== undefined && top.proxy !== null ? upstreams.find((u) => u.fromProxy)?.name : undefined);
    if (defaultUpstream !== undefined && !upstreams.some((u) => u.name === defaultUpstream)) {
      this.fail('default_upstream', `names no configured upstream: ${this.show(defaultUpstream)}`);
    }

    const config: Config = {
      version,
      log: { level, fields },
      storage: {
        backend,
        delete: { enabled: this.bool(del.enabled, 'storage.delete.enabled', false) },
        maintenance: {
          uploadpurging: {
            enabled: this.bool(purge.enabled, `${p}.enabled`, true),
            ageMs: this.duration(purge.age, `${p}.age`, 168 * 3_600_000),
            intervalMs: this.duration(purge.interval, `${p}.interval`, 24 * 3_600_000),
            dryrun: this.bool(purge.dryrun, `${p}.dryrun`, false),
          },
        },
      },
      http: {
        host, port,
        relativeUrls: this.bool(http.relativeurls, 'http.relativeurls', false),
        headers,
        ...(externalHost !== undefined ? { externalUrl: externalHost.replace(/\/$/, '') } : {}),
        ...(secret !== undefined ? { secret } : {}),
      },
      metadata: { path: metadataPath },
      upstreams: upstreams.map(({ fromProxy: _, ...u }) => u),
      ...(defaultUpstream !== undefined ? { defaultUpstream } : {}),
    };
    if (config.storage.maintenance.uploadpurging.enabled && config.storage.maintenance.uploadpurging.intervalMs <= 0) {
      this.fail(`${p}.interval`, 'must be more than 0 when purging is enabled');
    }
    return config;
  }

  private addr(text: string): { host: string; port: number } {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(text);
    const port = m ? Number(m[3]) : NaN;
    if (!m || port > 65535) this.fail('http.addr', `expected "host:port" or ":port", got ${this.show(text)}`);
    const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
    return { host, port };
  }

  private upstreams(top: Obj): Array<UpstreamConfig & { fromProxy: boolean }> {
    const out: Array<UpstreamConfig & { fromProxy: boolean }> = [];
    if (top.proxy !== undefined && top.proxy !== null) {
      const proxy = this.obj(top.proxy, 'proxy', ['remoteurl', 'username', 'password', 'ttl']);
      const url = this.url(this.str(proxy.remoteurl, 'proxy.remoteurl'), 'proxy.remoteurl');
      const hostname = new URL(url).host;
      const name = ['registry-1.docker.io', 'index.docker.io', 'docker.io'].includes(hostname) ? 'docker.io' : upstreamName(hostname);
      if (!UPSTREAM_NAME_RE.test(name)) this.fail('proxy.remoteurl', `the host ${this.show(hostname)} cannot be an upstream name; give it one under upstreams:`);
      out.push({
        ...this.upstreamDefaults(), name, url, fromProxy: true,
        ...optional('username', this.str(proxy.username, 'proxy.username')),
        ...optional('password', this.str(proxy.password, 'proxy.password')),
        contentTtlMs: this.duration(proxy.ttl, 'proxy.ttl', 0),
      });
    }
    if (top.upstreams !== undefined && top.upstreams !== null) {
      if (!Array.isArray(top.upstreams)) this.fail('upstreams', 'expected a list');
      top.upstreams.forEach((entry, i) => {
        const k = `upstreams[${i}]`;
        const u = this.obj(entry, k, ['name', 'url', 'username', 'password', 'password_file', 'tag_ttl', 'negative_ttl', 'revalidate_timeout', 'timeout', 'max_concurrent', 'ttl', 'circuit_breaker']);
        const given = this.str(u.name, `${k}.name`);
        if (!given) this.fail(`${k}.name`, 'required');
        if (!UPSTREAM_NAME_RE.test(given) || Number(/[:_](\d+)$/.exec(given)?.[1] ?? 0) > 65535) this.fail(`${k}.name`, `expected a host name such as "ghcr.io" or "registry.local:5000", got ${this.show(given)}`);
        const name = upstreamName(given);
        const clash = out.find((o) => o.name === name);
        if (clash) this.fail(`${k}.name`, `duplicate upstream name ${this.show(given)}${clash.fromProxy ? ' (the proxy: block already defines it)' : ''}`);
        const url = this.url(this.str(u.url, `${k}.url`), `${k}.url`);
        let password = this.str(u.password, `${k}.password`);
        const passwordFile = this.str(u.password_file, `${k}.password_file`);
        if (passwordFile !== undefined) {
          if (password !== undefined) this.fail(`${k}.password_file`, 'give password or password_file, not both');
          try {
            password = readFileSync(resolve(this.cwd, passwordFile), 'utf8').replace(/[\r\n]+$/, '');
          } catch (e) {
            this.fail(`${k}.password_file`, `cannot read ${passwordFile}: ${(e as Error).message}`);
          }
        }
        const d = this.upstreamDefaults();
        let timeouts = { connect: d.connectTimeoutMs, headers: d.headersTimeoutMs, body: d.bodyTimeoutMs };
        if (typeof u.timeout === 'string' || u.timeout === 0) {
          const all = this.duration(u.timeout, `${k}.timeout`, 0);
          timeouts = { connect: all, headers: all, body: all };
        } else if (u.timeout !== undefined && u.timeout !== null) {
          if (!isObj(u.timeout)) this.fail(`${k}.timeout`, `expected a duration or {connect, headers, body}, got ${this.show(u.timeout)}`);
          const t = this.obj(u.timeout, `${k}.timeout`, ['connect', 'headers', 'body']);
          timeouts = {
            connect: this.duration(t.connect, `${k}.timeout.connect`, timeouts.connect),
            headers: this.duration(t.headers, `${k}.timeout.headers`, timeouts.headers),
            body: this.duration(t.body, `${k}.timeout.body`, timeouts.body),
          };
        }
        out.push({
          name, url, fromProxy: false,
          ...optional('username', this.str(u.username, `${k}.username`)),
          ...optional('password', password),
          tagTtlMs: this.duration(u.tag_ttl, `${k}.tag_ttl`, d.tagTtlMs),
          negativeTtlMs: this.duration(u.negative_ttl, `${k}.negative_ttl`, d.negativeTtlMs),
          revalidateTimeoutMs: this.duration(u.revalidate_timeout, `${k}.revalidate_timeout`, d.revalidateTimeoutMs),
          connectTimeoutMs: timeouts.connect,
          headersTimeoutMs: timeouts.headers,
          bodyTimeoutMs: timeouts.body,
          maxConcurrent: this.int(u.max_concurrent, `${k}.max_concurrent`, d.maxConcurrent, 1, 1024),
          contentTtlMs: this.duration(u.ttl, `${k}.ttl`, 0),
          ...this.breaker(u.circuit_breaker, `${k}.circuit_breaker`),
        });
      });
    }
    return out;
  }

  private breaker(v: unknown, key: string): Pick<UpstreamConfig, 'breakerFailures' | 'breakerCooldownMs'> {
    const b = this.obj(v, key, ['failures', 'cooldown']);
    return {
      breakerFailures: this.int(b.failures, `${key}.failures`, 3, 1, 1000),
      breakerCooldownMs: this.duration(b.cooldown, `${key}.cooldown`, 10_000),
    };
  }

  private upstreamDefaults(): Omit<UpstreamConfig, 'name' | 'url'> {
    return {
      breakerFailures: 3, breakerCooldownMs: 10_000,
      tagTtlMs: 5 * 60_000, negativeTtlMs: 30_000, revalidateTimeoutMs: 3_000,
      connectTimeoutMs: 10_000, headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000, maxConcurrent: 16, contentTtlMs: 0,
    };
  }

  private url(value: string | undefined, key: string): string {
    if (!value) this.fail(key, 'required');
    let u: URL;
    try {
      u = new URL(value);
    } catch {
      this.fail(key, `expected an http:// or https:// URL, got ${this.show(value)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') this.fail(key, `expected an http:// or https:// URL, got ${this.show(value)}`);
    if (u.pathname !== '/' || u.search || u.hash || u.username || u.password) this.fail(key, `expected a URL without path, query or credentials, got ${this.show(value)}`);
    return `${u.protocol}//${u.host}`;
  }
}

/**
 * Upstream names: host names, optionally with a port. The name is also the cache prefix (a
 * repository name component), so a port's ':' becomes '_' ("registry.local:5000" ->
 * "registry.local_5000"), which is how routing looks up ?ns=host:port too.
 */
const UPSTREAM_NAME_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?:[:_](?:[1-9]\d{0,4}))?$/;

function upstreamName(host: string): string {
  return host.toLowerCase().replace(':', '_');
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
