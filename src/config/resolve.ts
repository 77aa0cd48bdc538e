/**
 * The decoded file (ConfigFile) -> the Config stowage runs with: the storage driver as one value,
 * `proxy:` as an upstream, passwords read from password_file, and the checks that span keys.
 * Sections not named here pass through as decoded.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Problem, decodeConfig } from './decode.js';
import { show } from './kinds.js';
import {
  DRIVERS, UPSTREAM_NAME, UpstreamSchema, type Config, type ConfigFile, type EndpointConfig, type MirrorConfig, type PrefetchConfig, type RangesConfig, type StorageConfig, type UpstreamConfig,
} from './schema.js';

type FileUpstream = ConfigFile['upstreams'][number];
type FileMirror = FileUpstream['mirrors'][number];

export function resolveConfig(file: ConfigFile): Config {
  const { storage, http, proxy, metadata, upstreams: fileUpstreams, default_upstream, ...rest } = file;

  // decode.ts made sure exactly one driver section is there.
  const driver = DRIVERS.find((d) => storage[d] !== undefined)!;
  const backend = { driver, ...storage[driver] } as StorageConfig;
  const purging = storage.maintenance.uploadpurging;
  const gc = storage.maintenance.gc;
  if (gc.enabled && gc.interval <= 0) throw new Problem('storage.maintenance.gc.interval', 'must be more than 0 when gc is enabled');
  if (purging.enabled && purging.interval <= 0) {
    throw new Problem('storage.maintenance.uploadpurging.interval', 'must be more than 0 when purging is enabled');
  }

  rest.policy?.rules.forEach((rule, i) => {
    const unknown = rule.keys.filter((k) => !(k in (rest.policy?.keys ?? {})));
    if (unknown.length > 0) throw new Problem(`policy.rules[${i}].keys`, `key set ${unknown.map(show).join(', ')} is not defined under policy.keys`);
  });

  const upstreams: UpstreamConfig[] = [];
  const prefetchOf = (u?: FileUpstream['prefetch']): PrefetchConfig => ({
    enabled: u?.enabled ?? rest.prefetch.enabled,
    concurrency: u?.concurrency ?? rest.prefetch.concurrency,
    maxBytes: u?.max_bytes ?? rest.prefetch.max_bytes,
  });
  const rangingOf = (u?: FileUpstream['ranges'], key = 'upstreams[]'): RangesConfig => {
    const r = {
      enabled: u?.enabled ?? rest.ranges.enabled,
      connections: u?.connections ?? rest.ranges.connections,
      chunkSize: u?.chunk_size ?? rest.ranges.chunk_size,
      minSize: u?.min_size ?? rest.ranges.min_size,
      startAfterMs: u?.start_after ?? rest.ranges.start_after,
    };
    if (r.chunkSize < 64 * 1024) throw new Problem(u?.chunk_size !== undefined ? `${key}.ranges.chunk_size` : 'ranges.chunk_size', 'must be at least 64KiB');
    return r;
  };
  if (proxy) {
    const hostname = new URL(proxy.remoteurl).host;
    const name = ['registry-1.docker.io', 'index.docker.io', 'docker.io'].includes(hostname) ? 'docker.io' : hostname.toLowerCase().replace(':', '_');
    if (!new RegExp(UPSTREAM_NAME).test(name)) throw new Problem('proxy.remoteurl', `the host ${show(hostname)} cannot be an upstream name; give it one under upstreams:`);
    upstreams.push({
      ...upstreamOf({ ...upstreamDefaults(), name, url: proxy.remoteurl, ttl: proxy.ttl }),
      prefetching: prefetchOf(),
      ranging: rangingOf(),
      ...(proxy.username !== undefined ? { username: proxy.username } : {}),
      ...(proxy.password !== undefined ? { password: proxy.password } : {}),
    });
  }
  fileUpstreams.forEach((u, i) => {
    const key = `upstreams[${i}]`;
    const name = u.name.toLowerCase().replace(':', '_');
    if (upstreams.some((o) => o.name === name)) {
      throw new Problem(`${key}.name`, `duplicate upstream name ${show(u.name)}${proxy && upstreams[0]!.name === name ? ' (the proxy: block already defines it)' : ''}`);
    }
    upstreams.push({ ...upstreamOf({ ...u, name }), ...credentials(u, key), mirrors: mirrorsOf(u, name, key), prefetching: prefetchOf(u.prefetch), ranging: rangingOf(u.ranges, key) });
  });

  const defaultUpstream = default_upstream ?? (proxy ? upstreams[0]!.name : undefined);
  if (defaultUpstream !== undefined && !upstreams.some((u) => u.name === defaultUpstream)) {
    throw new Problem('default_upstream', `names no configured upstream: ${show(defaultUpstream)}`);
  }

  // Each endpoint has its own outbox, keyed by name.
  const endpointNames = new Set<string>();
  rest.notifications.endpoints.forEach((e, i) => {
    if (endpointNames.has(e.name)) throw new Problem(`notifications.endpoints[${i}].name`, `duplicate endpoint name ${show(e.name)}`);
    endpointNames.add(e.name);
  });

  const { addr, host: externalUrl, relativeurls, ...httpRest } = http;
  return {
    ...rest,
    storage: {
      backend,
      delete: storage.delete,
      redirect: storage.redirect,
      maintenance: {
        uploadpurging: { enabled: purging.enabled, ageMs: purging.age, intervalMs: purging.interval, dryrun: purging.dryrun },
        gc: { enabled: gc.enabled, intervalMs: gc.interval, graceMs: gc.grace, deleteUntagged: gc.delete_untagged },
      },
    },
    http: { ...httpRest, host: addr.host, port: addr.port, relativeUrls: relativeurls, ...(externalUrl !== undefined ? { externalUrl } : {}) },
    metadata: {
      path: metadata.path ?? (backend.driver === 'filesystem' ? resolve(backend.rootdirectory, 'stowage.sqlite') : ':memory:'),
    },
    upstreams,
    ...(defaultUpstream !== undefined ? { defaultUpstream } : {}),
  };
}

/** An upstream with every key at its schema default (the proxy: block sets only url and ttl). */
function upstreamDefaults(): FileUpstream {
  return decodeConfig(UpstreamSchema, { name: 'proxy', url: 'http://proxy' }, { cwd: '/' }).value as FileUpstream;
}

function upstreamOf(u: Omit<FileUpstream, 'username' | 'password' | 'password_file' | 'mirrors'>): UpstreamConfig {
  return {
    ...endpointOf(u.name, u),
    tagTtlMs: u.tag_ttl,
    negativeTtlMs: u.negative_ttl,
    revalidateTimeoutMs: u.revalidate_timeout,
    contentTtlMs: u.ttl,
  };
}

/** The keys an upstream and its mirrors share, decoded (credentials apart: see credentials()). */
function endpointOf(name: string, e: Pick<FileMirror, 'url' | 'timeout' | 'max_concurrent' | 'circuit_breaker'>): EndpointConfig {
  const t = typeof e.timeout === 'number' ? { connect: e.timeout, headers: e.timeout, body: e.timeout } : e.timeout;
  return {
    name,
    url: e.url,
    connectTimeoutMs: t.connect,
    headersTimeoutMs: t.headers,
    bodyTimeoutMs: t.body,
    maxConcurrent: e.max_concurrent,
    breakerFailures: e.circuit_breaker.failures,
    breakerCooldownMs: e.circuit_breaker.cooldown,
  };
}

/**
 * upstreams[i].mirrors, each named "<upstream>@<host>" (logs, metrics, health). Every URL of a
 * chain is distinct: a mirror that is the upstream itself would only be asked twice.
 */
function mirrorsOf(u: FileUpstream, name: string, key: string): MirrorConfig[] {
  const seen = new Set([u.url]);
  return u.mirrors.map((m, j) => {
    const at = `${key}.mirrors[${j}]`;
    if (seen.has(m.url)) {
      throw new Problem(`${at}.url`, m.url === u.url ? `${show(m.url)} is the upstream's own url` : `${show(m.url)} is listed twice`);
    }
    seen.add(m.url);
    return { ...endpointOf(`${name}@${new URL(m.url).host}`, m), ...credentials(m, at) };
  });
}

function credentials(u: Pick<FileUpstream, 'username' | 'password' | 'password_file'>, key: string): Pick<UpstreamConfig, 'username' | 'password'> {
  let password = u.password;
  if (u.password_file !== undefined) {
    if (password !== undefined) throw new Problem(`${key}.password_file`, 'give password or password_file, not both');
    try {
      password = readFileSync(u.password_file, 'utf8').replace(/[\r\n]+$/, '');
    } catch (e) {
      throw new Problem(`${key}.password_file`, `cannot read ${u.password_file}: ${(e as Error).message}`);
    }
  }
  return { ...(u.username !== undefined ? { username: u.username } : {}), ...(password !== undefined ? { password } : {}) };
}
