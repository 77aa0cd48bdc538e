/**
 * The typed configuration. config/load.ts turns YAML + REGISTRY_* environment overrides into this
 * shape, validated once; nothing else in stowage reads raw config values.
 * Durations are milliseconds; sizes are bytes.
 */

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface UploadPurgingConfig {
  enabled: boolean;
  /** Uploads older than this are purged (registry:2 default 168h). */
  ageMs: number;
  /** How often to look (registry:2 default 24h). */
  intervalMs: number;
  dryrun: boolean;
}

export type StorageConfig =
  | { driver: 'filesystem'; rootdirectory: string }
  | { driver: 'inmemory' }
  | S3StorageConfig
  | AzureStorageConfig
  | SwiftStorageConfig;

/** registry:2's storage.s3 keys (storage.oss is mapped onto these: S3-compatible). Sizes in bytes. */
export interface S3StorageConfig {
  driver: 's3';
  /** Both absent: the AWS SDK's default credential chain (environment, files, instance role). */
  accesskey?: string;
  secretkey?: string;
  region: string;
  regionendpoint?: string;
  forcepathstyle: boolean;
  bucket: string;
  rootdirectory?: string;
  encrypt: boolean;
  keyid?: string;
  secure: boolean;
  skipverify: boolean;
  chunksize: number;
  multipartcopychunksize: number;
  multipartcopymaxconcurrency: number;
  multipartcopythresholdsize: number;
  storageclass: string;
}

/** registry:2's storage.azure keys. */
export interface AzureStorageConfig {
  driver: 'azure';
  accountname: string;
  accountkey: string;
  container: string;
  realm: string;
  /** A non-public endpoint (Azurite: http://127.0.0.1:10000/devstoreaccount1). */
  serviceurl?: string;
  rootdirectory?: string;
}

/** registry:2's storage.swift keys. */
export interface SwiftStorageConfig {
  driver: 'swift';
  authurl: string;
  username: string;
  password: string;
  tenant?: string;
  tenantid?: string;
  domain?: string;
  domainid?: string;
  tenantdomain?: string;
  tenantdomainid?: string;
  trustid?: string;
  region?: string;
  endpointtype?: string;
  container: string;
  prefix?: string;
  /** 0: from the URL; 1 (tempauth), 2, 3 (Keystone). */
  authversion: number;
  chunksize: number;
  insecureskipverify: boolean;
  /** Temp-URL key; absent: read from the account (or container) metadata. */
  secretkey?: string;
  tempurlcontainerkey: boolean;
  tempurlmethods: string[];
}

/** registry:2's storage.redirect: blob GETs answered with a redirect to the store. */
export interface RedirectConfig {
  disable: boolean;
}

export interface UpstreamConfig {
  /** The registry host clients know, e.g. "docker.io", "ghcr.io". Used as the cache prefix. */
  name: string;
  /** Base URL, http:// or https://, no trailing slash, e.g. "https://registry-1.docker.io". */
  url: string;
  username?: string;
  password?: string;
  /** How long a tag->digest answer is trusted before a HEAD revalidation (default 5m). */
  tagTtlMs: number;
  /** How long an upstream 404 for a tag is remembered (default 30s). */
  negativeTtlMs: number;
  /** How long a revalidation may take before the cached answer is served stale (default 3s). */
  revalidateTimeoutMs: number;
  /** Connect timeout (default 10s), time to response headers (default 30s), idle body (default 30s). */
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Parallel connections to this upstream (default 16). */
  maxConcurrent: number;
  /** registry:2's proxy.ttl: how long cached content is kept (0 = forever). */
  contentTtlMs: number;
  /** Circuit breaker: consecutive outages before it opens (default 3), first cooldown (default 10s). */
  breakerFailures: number;
  breakerCooldownMs: number;
}

export interface Config {
  version: string;
  log: { level: LogLevel; fields: Record<string, string> };
  storage: {
    backend: StorageConfig;
    delete: { enabled: boolean };
    maintenance: { uploadpurging: UploadPurgingConfig };
    /** Absent: no redirects (stowage serves the bytes itself). */
    redirect?: RedirectConfig;
  };
  http: {
    /** host:port to listen on; ":5000" means every interface. */
    host: string;
    port: number;
    /** External base URL (registry:2 http.host) used for absolute Location headers. */
    externalUrl?: string;
    /** registry:2 http.relativeurls: Location headers without scheme and host. */
    relativeUrls: boolean;
    secret?: string;
    /** Extra headers on every response (registry:2 http.headers). */
    headers: Record<string, string[]>;
  };
  /** better-sqlite3 database file; ":memory:" for the in-memory storage driver. */
  metadata: { path: string };
  upstreams: UpstreamConfig[];
  /** Name of the upstream that un-prefixed repository names go to, if any. */
  defaultUpstream?: string;
}
