/** What every route handler gets besides the request and reply. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics.js';
import type { SignaturePolicy } from '../policy/policy.js';
import type { PullThrough } from '../proxy/pull-through.js';
import type { LocalRegistry } from '../registry/registry.js';
import type { V2Endpoint } from './v2-path.js';

export interface RouteDeps {
  config: Config;
  registry: LocalRegistry;
  /** Present when upstreams are configured: reads go local -> cache -> upstream. */
  proxy?: PullThrough;
  metrics?: Metrics;
  /** Signature policy (policy:): manifests are checked before they are served or stored. */
  signatures?: SignaturePolicy;
}

/**
 * Facts about a request that the one-line request log reports. Every key is always present
 * (undefined until known): objects of one shape keep the per-request code on V8's fast paths;
 * growing an empty object key by key and spreading it cost ~4% of a warm manifest GET.
 */
export interface RequestFacts {
  /** The endpoint kind (manifest, blob, upload, ...), for metrics. */
  kind: string | undefined;
  repo: string | undefined;
  reference: string | undefined;
  /** The digest of the manifest a manifest GET or HEAD answered with. */
  digest: string | undefined;
  /** Where content served through the cache is stored (its cache repository); unset for local content. */
  storedRepo: string | undefined;
  /** hit | miss | stale | joined | local, set by the pull-through cache. */
  cache: string | undefined;
  /** Bytes this request caused to be fetched from an upstream (a miss fetches the whole object). */
  upstreamBytes: number | undefined;
  /** The blob GET was answered with a redirect to the storage backend. */
  redirected: boolean | undefined;
  /** The authenticated user, when there is one (never a credential). */
  user: string | undefined;
}

export function newRequestFacts(): RequestFacts {
  return {
    kind: undefined, repo: undefined, reference: undefined, digest: undefined, storedRepo: undefined,
    cache: undefined, upstreamBytes: undefined, redirected: undefined, user: undefined,
  };
}

export type Handler<K extends V2Endpoint['kind']> = (
  req: FastifyRequest,
  reply: FastifyReply,
  endpoint: Extract<V2Endpoint, { kind: K }>,
  deps: RouteDeps,
) => Promise<unknown>;

/**
 * Runs after the path is parsed and before the handler; refuses by throwing a RegistryError
 * (authorization, limits). A gate that needs no I/O for a request answers at once (undefined).
 */
export type Gate = (req: FastifyRequest, reply: FastifyReply, endpoint: V2Endpoint) => Promise<void> | undefined;

declare module 'fastify' {
  interface FastifyRequest {
    facts: RequestFacts;
  }
}

/** Absolute URL for a Location header, as registry:2 builds it (unless http.relativeurls). */
export function locationFor(req: FastifyRequest, config: Config, path: string): string {
  if (config.http.relativeUrls) return path;
  if (config.http.externalUrl) return `${config.http.externalUrl}${path}`;
  const proto = (req.headers['x-forwarded-proto'] as string | undefined)?.split(',')[0]?.trim() || req.protocol;
  const host = (req.headers['x-forwarded-host'] as string | undefined) ?? req.headers.host ?? 'localhost';
  return `${proto}://${host}${path}`;
}

export function queryParam(req: FastifyRequest, name: string): string | undefined {
  const v = (req.query as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Header values as a list: "a, b" and repeated headers alike. */
export function headerList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}
