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

/** Facts about a request that the one-line request log reports. */
export interface RequestFacts {
  /** The endpoint kind (manifest, blob, upload, ...), for metrics. */
  kind?: string;
  repo?: string;
  reference?: string;
  /** The digest of the manifest a manifest GET or HEAD answered with. */
  digest?: string;
  /** hit | miss | stale | joined | local, set by the pull-through cache. */
  cache?: string;
  /** Bytes this request caused to be fetched from an upstream (a miss fetches the whole object). */
  upstreamBytes?: number;
  /** The blob GET was answered with a redirect to the storage backend. */
  redirected?: boolean;
  /** The authenticated user, when there is one (never a credential). */
  user?: string;
}

export type Handler<K extends V2Endpoint['kind']> = (
  req: FastifyRequest,
  reply: FastifyReply,
  endpoint: Extract<V2Endpoint, { kind: K }>,
  deps: RouteDeps,
) => Promise<unknown>;

/**
 * Runs after the path is parsed and before the handler; refuses by throwing a RegistryError
 * (authorization, limits).
 */
export type Gate = (req: FastifyRequest, reply: FastifyReply, endpoint: V2Endpoint) => Promise<void>;

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
