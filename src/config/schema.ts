/**
 * The whole configuration, described once: registry:2's config.yml keys plus stowage's own.
 * Types (Static<>), validation, defaults, REGISTRY_* environment overrides and the README's
 * reference table all come from ConfigSchema.
 *
 * To add a section (or implement an `ignored`/`refused` one):
 *   cache: optional(section({
 *     max_size: size({ description: 'Most bytes kept', default: '200GiB' }),
 *     low_watermark: percent({ description: 'Evict down to', default: '90%' }),
 *     pin: list(str({ description: 'A repository' }), { description: 'Never evicted', default: [] }),
 *   }, { description: 'Cache size limits' })),
 * It reaches the code as `config.cache` (typed, decoded: bytes, fraction, ms, absolute paths), with
 * REGISTRY_CACHE_MAX_SIZE etc. Then paste `stowage config reference` into README.md.
 * A storage driver: a section under storage plus its name in DRIVERS.
 */
import type { Static } from 'typebox';
import {
  addr, bool, duration, either, href, ignored, int, list, map, oneOf, optional, path, percent, refused, secret, section, size, str, url,
} from './kinds.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** Storage drivers stowage has (each a section under storage:); the other registry:2 drivers are refused. */
export const DRIVERS = ['filesystem', 'inmemory', 's3', 'oss', 'azure', 'swift'] as const;
const NO_DRIVER = 'storage driver not supported (stowage has filesystem, inmemory, s3, oss, azure and swift)';
const HTTP_URL = '^https?://[^\\s]+$';

/** registry:2's storage.s3 keys. OSS and other S3-compatible stores use them with regionendpoint + forcepathstyle. */
const S3Section = section({
  accesskey: optional(str({ description: 'Access key id; with secretkey absent too, the AWS SDK\'s default credential chain (environment, shared files, instance role)' })),
  secretkey: optional(secret({ description: 'Secret access key' })),
  region: str({ description: 'Region of the bucket (S3-compatible stores: whatever they expect, often us-east-1)', example: 'us-east-1' }),
  regionendpoint: optional(str({ description: 'Endpoint of an S3-compatible store (MinIO, Ceph, Swift s3api, OSS): a URL, or host:port with `secure` choosing the scheme', example: 'http://127.0.0.1:8080' })),
  forcepathstyle: bool({ description: 'Path-style URLs (endpoint/bucket/key), as most S3-compatible stores need', default: false }),
  bucket: str({ description: 'The bucket (created beforehand)', pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', expected: 'expected a bucket name of 3 to 63 lowercase letters, digits, dots and hyphens' }),
  rootdirectory: optional(str({ description: 'Key prefix under which the registry lives', example: '/registry' })),
  encrypt: bool({ description: 'Server-side encryption (AES256, or aws:kms with keyid)', default: false }),
  keyid: optional(str({ description: 'KMS key id for server-side encryption' })),
  secure: bool({ description: 'https for a regionendpoint given without a scheme', default: true }),
  skipverify: bool({ description: 'Skip TLS certificate verification of the endpoint', default: false }),
  v4auth: ignored('registry:2 signature v4 switch; always v4'),
  chunksize: size({ description: 'Multipart part size (at least 5MiB)', default: '10MiB' }),
  multipartcopychunksize: size({ description: 'Part size of server-side multipart copies (moves of big objects)', default: '32MiB' }),
  multipartcopymaxconcurrency: int({ description: 'Parts copied at once in a multipart copy', default: 100, min: 1, max: 1000 }),
  multipartcopythresholdsize: size({ description: 'Objects above this are moved with a multipart copy', default: '32MiB' }),
  storageclass: str({ description: 'Storage class of new objects (STANDARD, REDUCED_REDUNDANCY, ...; NONE sends none)', default: 'STANDARD' }),
  loglevel: ignored('registry:2 AWS SDK log level'),
  objectacl: ignored('registry:2 canned ACL; not sent'),
  useragent: ignored('registry:2 user agent'),
  usedualstack: ignored('registry:2 dual-stack endpoints'),
  accelerate: ignored('registry:2 transfer acceleration'),
}, { description: 'S3 storage driver (Amazon S3 and S3-compatible stores)' });

/** registry:2's storage.oss keys, mapped onto the s3 driver (OSS speaks the S3 API). */
const OssSection = section({
  accesskeyid: str({ description: 'OSS AccessKey ID' }),
  accesskeysecret: secret({ description: 'OSS AccessKey secret' }),
  region: str({ description: 'OSS region, e.g. oss-cn-hangzhou', example: 'oss-cn-hangzhou' }),
  endpoint: optional(str({ description: 'Endpoint host or URL; default https://<region>.aliyuncs.com', example: 'oss-cn-hangzhou.aliyuncs.com' })),
  bucket: str({ description: 'The bucket (created beforehand)' }),
  rootdirectory: optional(str({ description: 'Key prefix under which the registry lives' })),
  chunksize: size({ description: 'Multipart part size (at least 5MiB)', default: '10MiB' }),
  secure: bool({ description: 'https to the endpoint', default: true }),
  internal: ignored('registry:2 OSS internal endpoint switch; give endpoint instead'),
  encrypt: ignored('registry:2 OSS server-side encryption; not sent'),
  encryptionkeyid: ignored('registry:2 OSS KMS key; not sent'),
}, { description: 'Aliyun OSS, through the S3 driver (S3-compatible API; tested only as S3)' });

const AzureSection = section({
  accountname: str({ description: 'Storage account name' }),
  accountkey: secret({ description: 'Storage account key (base64)' }),
  container: str({ description: 'Blob container (created beforehand)', pattern: '^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$', expected: 'expected a container name of 3 to 63 lowercase letters, digits and hyphens' }),
  realm: str({ description: 'Domain of the public endpoints', default: 'core.windows.net' }),
  serviceurl: optional(str({ description: 'Blob service URL for non-public endpoints (Azurite: http://127.0.0.1:10000/devstoreaccount1)', pattern: HTTP_URL, expected: 'expected an http:// or https:// URL', example: 'http://127.0.0.1:10000/devstoreaccount1' })),
  rootdirectory: optional(str({ description: 'Blob name prefix under which the registry lives' })),
  chunksize: size({ description: 'Block size of writes', default: '4MiB' }),
}, { description: 'Azure Blob Storage driver' });

const SwiftSection = section({
  authurl: str({ description: 'Identity endpoint: tempauth /auth/v1.0, Keystone /v2.0 or /v3', pattern: HTTP_URL, expected: 'expected an http:// or https:// URL', example: 'https://keystone.example.com/v3' }),
  username: str({ description: 'User name' }),
  password: secret({ description: 'Password (or tempauth key)' }),
  tenant: optional(str({ description: 'Project (tenant) name' })),
  tenantid: optional(str({ description: 'Project (tenant) id' })),
  domain: optional(str({ description: 'User domain name (Keystone v3)' })),
  domainid: optional(str({ description: 'User domain id (Keystone v3)' })),
  tenantdomain: optional(str({ description: 'Project domain name (Keystone v3; default: the user domain)' })),
  tenantdomainid: optional(str({ description: 'Project domain id (Keystone v3)' })),
  trustid: optional(str({ description: 'Trust id (Keystone v3)' })),
  region: optional(str({ description: 'Region of the object-store endpoint in the catalog' })),
  endpointtype: oneOf(['public', 'internal', 'admin'], { description: 'Which catalog endpoint to use', default: 'public' }),
  container: str({ description: 'Container (created beforehand)' }),
  prefix: optional(str({ description: 'Object name prefix under which the registry lives' })),
  authversion: int({ description: '1 (tempauth), 2 or 3 (Keystone); 0: guessed from authurl', default: 0, min: 0, max: 3 }),
  chunksize: size({ description: 'Segment size: bigger files are Static Large Objects', default: '20MiB' }),
  insecureskipverify: bool({ description: 'Skip TLS certificate verification', default: false }),
  secretkey: optional(secret({ description: 'Temp-URL key for redirects; default: read from the account (or container) metadata' })),
  accesskey: ignored('registry:2 HP Cloud access key; not used'),
  tempurlcontainerkey: bool({ description: 'Read the temp-URL key from the container metadata instead of the account\'s', default: false }),
  tempurlmethods: list(str({ description: 'An HTTP method' }), { description: 'Methods redirected to temp URLs', default: ['GET', 'HEAD'], single: true }),
}, { description: 'OpenStack Swift storage driver (native API)' });

/** Host names, optionally with a port up to 65535: also cache prefixes (a ':' becomes '_'). */
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const PORT = '(?:[1-9]\\d{0,3}|[1-5]\\d{4}|6[0-4]\\d{3}|65[0-4]\\d{2}|655[0-2]\\d|6553[0-5])';
export const UPSTREAM_NAME = `^${LABEL}(?:\\.${LABEL})*(?:[:_]${PORT})?$`;

/** {connect, headers, body}, or one duration for all three. */
const timeouts = (what: string, defaults: { connect: string; headers: string; body: string }) => either([
  duration({ description: 'All three timeouts at once' }),
  section({
    connect: duration({ description: 'TCP+TLS connect timeout', default: defaults.connect }),
    headers: duration({ description: 'Time from a request to its response headers, connecting included (kept on a precise timer)', default: defaults.headers }),
    body: duration({ description: 'Longest pause while a body streams', default: defaults.body }),
  }),
], { description: `${what}: one duration for all, or {connect, headers, body}`, default: {}, expected: 'expected a duration or {connect, headers, body}' });

const circuitBreaker = (what: string, failures: number) => section({
  failures: int({ description: `Consecutive outages before the breaker opens (requests then ${what === 'the mirror' ? 'skip the mirror' : 'fail fast'})`, default: failures, min: 1, max: 1000 }),
  cooldown: duration({ description: `First wait before one request probes ${what} again (doubles while it stays down)`, default: '10s' }),
});

/**
 * One mirror of an upstream (a site cache, a regional cache): its own URL, credentials, timeouts
 * and circuit breaker. Nothing is inherited from the upstream, credentials least of all.
 */
export const MirrorSchema = section({
  url: url({ description: 'Base URL of the mirror, http:// or https://, no path' }),
  username: optional(str({ description: 'User name for this mirror (sent to it and its token realm only)' })),
  password: optional(secret({ description: 'Password or token for this mirror' })),
  password_file: optional(path({ description: 'File holding the password, read at start; instead of password' })),
  timeout: timeouts('Mirror timeouts, shorter than an upstream\'s so that a dead mirror costs little', { connect: '3s', headers: '3s', body: '30s' }),
  max_concurrent: int({ description: 'Parallel connections to this mirror', default: 16, min: 1, max: 1024 }),
  // One outage is enough: passing a request on to the next endpoint costs little, asking a dead
  // mirror again costs every request meanwhile a round trip or a timeout.
  circuit_breaker: circuitBreaker('the mirror', 1),
}, { description: 'A mirror tried before the upstream' });

/**
 * Layer prefetch (issue 17). On by default: a client that asked for an image manifest asks for its
 * layers next (that is what a pull is), and fetching them now overlaps the upstream's round trips
 * with the client's own, which on a WAN is most of a cold pull's time. Three at a time per
 * upstream: enough to keep a high-latency link busy, few enough that client-driven fills (up to
 * max_concurrent connections) keep most of the upstream's connections. 2GiB per manifest: covers
 * nearly every real image whole, and caps what one manifest GET can make the cache fetch unasked.
 */
const PREFETCH_DEFAULTS = { enabled: true, concurrency: 3, max_bytes: '2GiB' } as const;
const prefetchDescription = 'Layer prefetch: serving an image manifest (GET) fetches the blobs it references that are not cached yet, in the background; clients join those fetches. Never for an index\'s other platforms';

export const PrefetchSchema = section({
  enabled: bool({ description: 'Prefetch the missing blobs of an image manifest served from an upstream', default: PREFETCH_DEFAULTS.enabled }),
  concurrency: int({ description: 'Blobs prefetched at once per upstream (more wait in a queue)', default: PREFETCH_DEFAULTS.concurrency, min: 1, max: 64 }),
  max_bytes: size({ description: 'Most bytes prefetched for one manifest: blobs past it are fetched when a client asks', default: PREFETCH_DEFAULTS.max_bytes }),
}, { description: `${prefetchDescription} (every upstream; upstreams[].prefetch overrides it key by key)` });

/** An upstream's prefetch keys: each one absent takes the global prefetch: value. */
const UpstreamPrefetchSchema = section({
  enabled: optional(bool({ description: 'Prefetch for this upstream (default: prefetch.enabled)' })),
  concurrency: optional(int({ description: 'Blobs prefetched at once from this upstream (default: prefetch.concurrency)', min: 1, max: 64 })),
  max_bytes: optional(size({ description: 'Most bytes prefetched for one manifest (default: prefetch.max_bytes)' })),
}, { description: `${prefetchDescription}: this upstream's keys, overriding the global prefetch: section` });

/**
 * Ranged fetch of big blobs (issue 17). Across a WAN each TCP connection is bounded (its window
 * over the round-trip time, or a CDN's per-connection pacing), so one big layer on one connection
 * bounds a cold pull. The first request of a fill asks for the first chunk_size bytes only; its
 * Content-Range gives the size. A blob at least min_size big is fetched as chunk_size Range
 * requests, `connections` at a time, merged back into one ordered stream that is hashed and
 * verified as before; a blob between chunk_size and min_size gets its rest in one request beside
 * the first. 4 connections: each adds about one connection's rate on a paced link (the bench's
 * 50 ms / 200 Mbit/s), 4 x prefetch.concurrency stays under max_concurrent. 8MiB chunks: a few
 * round trips' worth of data at such rates, so each request's round trip is a small part of it.
 * 32MiB minimum: below it a blob takes under ~1.5 s on one such connection, and splitting it
 * further buys little for more requests. Memory per fill: at most (connections - 1) x chunk_size
 * of chunks waiting for their turn (24 MiB by default), or min_size - chunk_size for a blob under
 * min_size (24 MiB too), and at most max_memory across every fill of the process: on loopback
 * or a fast LAN the later chunks arrive faster than the first one can be written, and with
 * prefetch running three big fills at once they held ~85 MiB (bench/cold.mjs --memory); past
 * max_memory a later chunk's response is paused and TCP holds the rest upstream. And only when
 * the first chunk is still arriving after start_after (100ms, i.e. slower than 80 MiB/s with 8MiB
 * chunks): from a LAN or loopback upstream one connection already outruns the disk, and the later
 * chunks would only wait in memory (a time-to-first-byte test was tried first: registry:2 on
 * loopback took 10-38 ms to answer a fill's first range under a cold pull, as long as a WAN). 48MiB keeps one
 * big WAN fill fully parallel (24 MiB) with room for a smaller one beside it. An upstream that answers 200 (ignores Range) is read as a plain GET; a
 * wrong or short range, or an error, falls back to one GET of the rest from the bytes already
 * delivered; the digest is verified at the end either way.
 */
const RANGES_DEFAULTS = { enabled: true, connections: 4, chunk_size: '8MiB', min_size: '32MiB', max_memory: '16MiB', start_after: '100ms' } as const;
const startAfterDescription = 'The later chunks are asked for only if the first one is still arriving after this long: an upstream that sends chunk_size faster (a LAN, loopback: one connection outruns the disk) gets the rest of the blob in one request after the first chunk. 0s: at once';
const rangesDescription = 'Ranged fetch: a blob bigger than chunk_size is fetched from the upstream as Range requests over several connections at once (chunk_size each from min_size up), merged in order, verified by digest as a whole';

export const RangesSchema = section({
  enabled: bool({ description: 'Fetch big blobs over several connections with Range requests (off: one GET per blob)', default: RANGES_DEFAULTS.enabled }),
  connections: int({ description: 'Range requests in flight per blob (chunks that arrive before their turn wait in the spool file, on disk)', default: RANGES_DEFAULTS.connections, min: 1, max: 16 }),
  chunk_size: size({ description: 'Bytes asked for per Range request', default: RANGES_DEFAULTS.chunk_size }),
  min_size: size({ description: 'Blobs smaller than this are not split into chunks: the first chunk and the rest, two requests at once', default: RANGES_DEFAULTS.min_size }),
  start_after: duration({ description: startAfterDescription, default: RANGES_DEFAULTS.start_after }),
  max_memory: size({ description: 'Bytes of later chunks in memory on their way to the spool file, across every ranged fetch of the process: past it, later Range responses are paused (TCP backpressure) until the writes catch up. Global only', default: RANGES_DEFAULTS.max_memory }),
  spool_dir: optional(path({ description: 'Where later chunks wait for their turn, in unnamed files gone when the fill ends (disk, not memory); default: the filesystem storage\'s rootdirectory, else the system\'s temporary directory. Where no file can be made there, a big blob comes in one request after its first chunk. Global only' })),
}, { description: `${rangesDescription} (every upstream; upstreams[].ranges overrides it key by key)` });

/** An upstream's ranges keys: each one absent takes the global ranges: value. */
const UpstreamRangesSchema = section({
  enabled: optional(bool({ description: 'Ranged fetch from this upstream (default: ranges.enabled)' })),
  connections: optional(int({ description: 'Range requests in flight per blob (default: ranges.connections)', min: 1, max: 16 })),
  chunk_size: optional(size({ description: 'Bytes per Range request (default: ranges.chunk_size)' })),
  min_size: optional(size({ description: 'Blobs smaller than this are not split into chunks (default: ranges.min_size)' })),
  start_after: optional(duration({ description: `${startAfterDescription} (default: ranges.start_after)` })),
}, { description: `${rangesDescription}: this upstream's keys, overriding the global ranges: section` });

export const UpstreamSchema = section({
  name: str({
    description: 'The registry host clients know ("docker.io", "ghcr.io", "registry.local:5000"); also the cache prefix, with ":" as "_"',
    pattern: UPSTREAM_NAME, expected: 'expected a host name such as "ghcr.io" or "registry.local:5000"', example: 'ghcr.io',
  }),
  url: url({ description: 'Base URL of the upstream registry, http:// or https://, no path' }),
  username: optional(str({ description: 'User name for the upstream (token or basic auth)' })),
  password: optional(secret({ description: 'Password or token for the upstream' })),
  password_file: optional(path({ description: 'File holding the password, read at start (a trailing newline is dropped); instead of password' })),
  tag_ttl: duration({ description: 'How long a tag→digest answer is served without asking upstream', default: '5m' }),
  negative_ttl: duration({ description: 'How long an upstream 404 for a tag is remembered', default: '30s' }),
  revalidate_timeout: duration({ description: 'After tag_ttl: if the revalidating HEAD takes longer, serve the cached tag stale', default: '3s' }),
  timeout: timeouts('Upstream timeouts', { connect: '10s', headers: '30s', body: '30s' }),
  max_concurrent: int({ description: 'Parallel connections to this upstream', default: 16, min: 1, max: 1024 }),
  ttl: duration({ description: 'Cached content not pulled for this long is removed (0: kept forever)', default: '0' }),
  circuit_breaker: circuitBreaker('the upstream', 3),
  mirrors: list(MirrorSchema, {
    description: 'Mirrors of this upstream (site or regional caches), tried in order before `url`: a request falls through to the next on a failure (refused, timeout, 5xx, open breaker, 401/403/429) or a 404; the answer of `url` is final',
    default: [],
  }),
  prefetch: optional(UpstreamPrefetchSchema),
  ranges: optional(UpstreamRangesSchema),
}, { description: 'An upstream registry to pull through' });

/** Header name -> values, as registry:2 writes them (values redacted when shown: they often carry tokens). */
const headerMap = (description: string) => map(list(secret({ description: 'A header value' }), { description: 'Values of one header', single: true }), {
  description, default: {},
  keyPattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", keyExpected: 'invalid header name', expected: 'expected a mapping of header name to a list of values',
});

export const EVENT_ACTIONS = ['push', 'pull', 'mount', 'delete', 'fetch', 'policy'] as const;
/** Signature policy rule modes. */
export const POLICY_MODES = ['enforce', 'warn', 'off'] as const;

export const NotificationEndpointSchema = section({
  name: str({ description: 'Name of the endpoint (logs, metrics, the outbox)', pattern: '^[A-Za-z0-9._-]{1,64}$', expected: 'expected 1-64 letters, digits, ".", "_" or "-"', example: 'audit' }),
  url: href({ description: 'Where the event envelopes are POSTed' }),
  headers: headerMap('Static headers on every delivery: name → list of values'),
  timeout: duration({ description: 'Time one delivery may take', default: '5s' }),
  threshold: int({ description: 'Failed deliveries in a row before the endpoint counts as down (the wait then doubles per failure, up to 5m)', default: 10, min: 1, max: 1000 }),
  backoff: duration({ description: 'Wait before retrying a failed delivery', default: '1s' }),
  disabled: bool({ description: 'Record nothing for this endpoint', default: false }),
  ignoredmediatypes: list(str({ description: 'A media type' }), { description: 'Events whose target has one of these media types are not sent', default: [] }),
  ignore: section({
    mediatypes: list(str({ description: 'A media type' }), { description: 'Target media types not sent (as ignoredmediatypes)', default: [] }),
    actions: list(oneOf(EVENT_ACTIONS, { description: 'An action' }), { description: 'Actions not sent', default: [] }),
  }),
  maxpending: int({ description: 'Most undelivered events kept for this endpoint; beyond it the oldest are dropped (counted and logged)', default: 100_000, min: 1, max: 100_000_000 }),
  batch: int({ description: 'Most events in one envelope', default: 100, min: 1, max: 10_000 }),
}, { description: 'A webhook receiving registry events' });

const NotificationsSchema = section({
  events: section({
    includereferences: bool({ description: 'Add the descriptors a manifest references to its events (target.references)', default: false }),
  }),
  endpoints: list(NotificationEndpointSchema, { description: 'Webhooks; each has its own durable outbox', default: [] }),
}, { description: 'registry:2 notifications: events POSTed to webhooks, durably (outbox in the SQLite index)' });

/** GitLab container registry's `database` keys, so operators of both write the same thing. */
const DatabaseSchema = section({
  enabled: bool({ description: 'Keep the metadata index in PostgreSQL, shared by several stowage replicas on one storage (off: SQLite, one process)', default: false }),
  dsn: optional(secret({ description: 'A postgres:// connection URL (libpq DSN); the keys below override its parts', example: 'postgres://stowage@db.internal:5432/stowage?sslmode=require' })),
  host: optional(str({ description: 'Database host (or a directory holding its Unix socket)', example: 'db.internal' })),
  port: optional(int({ description: 'Database port', min: 1, max: 65535, example: '5432' })),
  user: optional(str({ description: 'Database user' })),
  password: optional(secret({ description: 'Database password' })),
  dbname: optional(str({ description: 'Database name' })),
  schema: optional(str({ description: 'Schema the tables live in (created when missing); default the user\'s search_path (public)', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$', expected: 'expected an SQL identifier: letters, digits and _', example: 'registry' })),
  sslmode: optional(oneOf(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'], { description: 'TLS to the database, as libpq\'s sslmode; default: the url\'s, else prefer' })),
  sslcert: optional(path({ description: 'Client certificate (PEM) for require / verify-ca / verify-full' })),
  sslkey: optional(path({ description: 'Key of the client certificate (PEM)' })),
  sslrootcert: optional(path({ description: 'CA certificates (PEM) the server\'s certificate must lead to (verify-ca, verify-full)' })),
  connecttimeout: duration({ description: 'Time a new connection may take', default: '10s' }),
  statementtimeout: duration({ description: 'Longest a statement may run before the database cancels it', default: '30s' }),
  pool: section({
    maxopen: int({ description: 'Most connections per replica (one more listens for changes)', default: 10, min: 1, max: 1000 }),
    maxidletime: duration({ description: 'An idle connection is closed after this (0: never)', default: '5m' }),
    maxlifetime: duration({ description: 'A connection is replaced after this (0: never)', default: '0' }),
  }),
  draintimeout: ignored('GitLab registry: time to drain connections at shutdown; stowage closes them within 5s'),
  preparedstatements: ignored('GitLab registry: prepared statements switch; stowage always prepares'),
  loadbalancing: ignored('GitLab registry: read replicas; not implemented'),
  backgroundmigrations: ignored('GitLab registry: background migrations; not needed'),
}, { description: 'PostgreSQL metadata database for replicas (GitLab container registry\'s keys). Migrations run at start, once however many replicas start; `stowage db status` shows them' });

const threshold = (what: string) => int({ description: `Failures in a row before ${what} fails (0 or 1: the first)`, default: 1, min: 0, max: 1000 });

const HealthSchema = section({
  storagedriver: section({
    enabled: bool({ description: 'Check that storage can store, read and delete a small file', default: false }),
    interval: duration({ description: 'Time between storage checks', default: '10s' }),
    threshold: threshold('the storage check'),
  }),
  file: list(section({
    file: path({ description: 'Health fails while this file exists (take an instance out of rotation)' }),
    interval: duration({ description: 'Time between looks', default: '10s' }),
  }), { description: 'File checks', default: [] }),
  http: list(section({
    uri: href({ description: 'URL asked with HEAD' }),
    headers: headerMap('Headers on the check request'),
    statuscode: int({ description: 'Status the URL must answer', default: 200, min: 100, max: 599 }),
    timeout: duration({ description: 'Time the request may take', default: '3s' }),
    interval: duration({ description: 'Time between checks', default: '10s' }),
    threshold: threshold('the check'),
  }), { description: 'HTTP checks', default: [] }),
  tcp: list(section({
    addr: str({ description: 'host:port a TCP connection must open to', pattern: '^(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):\\d{1,5}$', expected: 'expected "host:port"', example: 'redis.local:6379' }),
    timeout: duration({ description: 'Time the connection may take', default: '3s' }),
    interval: duration({ description: 'Time between checks', default: '10s' }),
    threshold: threshold('the check'),
  }), { description: 'TCP checks', default: [] }),
  database: section({
    interval: duration({ description: 'Time between checks that the metadata database answers (with database.enabled; a failing check makes this replica answer 503)', default: '2s' }),
    timeout: duration({ description: 'Time the database may take to answer the check', default: '2s' }),
    threshold: threshold('the database check'),
  }),
  upstreams: section({
    enabled: bool({ description: 'Probe each upstream\'s /v2/ actively (reported in metrics and logs; never fails health). Off: reachability is reported from the circuit breaker, and nothing is sent upstream but pulls', default: false }),
    interval: duration({ description: 'Time between probes', default: '60s' }),
    timeout: duration({ description: 'Time a probe may take', default: '5s' }),
  }),
}, { description: 'registry:2 health checks: while one fails, /debug/health lists it and registry requests answer 503' });

export const ConfigSchema = section({
  version: oneOf(['0.1'], { description: 'registry:2 config version', default: '0.1' }),
  log: section({
    level: oneOf(LOG_LEVELS, { description: 'Least severe level logged (registry:2\'s "warning" and "panic" work too)', default: 'info', aliases: { warning: 'warn', panic: 'fatal' } }),
    formatter: optional(oneOf(['json', 'text', 'logstash'], { description: 'Accepted for registry:2 compatibility; stowage always logs JSON lines' })),
    fields: map(str({ description: 'A field value' }), { description: 'Fields added to every log line', default: {}, expected: 'expected a mapping of strings' }),
    accesslog: ignored('registry:2 access log switch; stowage logs one line per request'),
    hooks: ignored('registry:2 log hooks (mail); not implemented'),
  }),
  loglevel: ignored('registry:2\'s deprecated top-level log level; use log.level'),
  storage: section({
    filesystem: optional(section({
      rootdirectory: path({ description: 'Where blobs and manifests live, in registry:2\'s layout (docker/registry/v2/...)', default: './data' }),
      maxthreads: ignored('registry:2 filesystem thread limit; not needed'),
    }, { description: 'Filesystem storage driver (the default)' })),
    inmemory: optional(section({}, { description: 'In-memory storage driver: everything is lost at exit (tests, trials)' })),
    s3: optional(S3Section),
    oss: optional(OssSection),
    azure: optional(AzureSection),
    swift: optional(SwiftSection),
    gcs: refused(NO_DRIVER, 'registry:2 Google Cloud Storage driver; not implemented: refused at start-up'),
    delete: section({
      enabled: bool({ description: 'Allow DELETE of manifests and blobs (405 UNSUPPORTED while false)', default: false }),
    }),
    maintenance: section({
      uploadpurging: section({
        enabled: bool({ description: 'Remove abandoned upload sessions', default: true }),
        age: duration({ description: 'Uploads older than this are removed', default: '168h' }),
        interval: duration({ description: 'How often to look for them', default: '24h' }),
        dryrun: bool({ description: 'Only log what would be removed', default: false }),
      }),
      gc: section({
        enabled: bool({ description: 'Collect garbage in the server, while it accepts pushes (`stowage gc` runs it by hand)', default: false }),
        interval: duration({ description: 'How often', default: '24h' }),
        grace: duration({ description: 'Content recorded or used this recently before a run is never removed', default: '10m' }),
        delete_untagged: bool({ description: 'Also remove manifests of pushed repositories that no tag reaches', default: false }),
      }),
      readonly: ignored('registry:2 read-only mode; not implemented'),
    }),
    cache: ignored('registry:2 blob descriptor cache; stowage keeps its own SQLite index'),
    redirect: section({
      disable: bool({
        description: 'Serve blob bytes from stowage (true, stowage\'s default) or answer blob GETs with a redirect to the object store (false, registry:2\'s default): clients must reach the store',
        default: true,
      }),
    }),
    tag: ignored('registry:2 tag concurrency; not needed'),
  }, { description: 'Storage driver and storage options', drivers: [...DRIVERS] }),
  http: section({
    addr: addr({ description: 'Address to listen on; ":5000" means every interface', default: ':5000' }),
    host: optional(url({ description: 'External base URL for absolute Location headers (behind a proxy)' })),
    relativeurls: bool({ description: 'Location headers without scheme and host', default: false }),
    secret: optional(secret({ description: 'registry:2 upload-state secret; accepted (stowage keeps upload state on the server)' })),
    headers: map(list(str({ description: 'A header value' }), { description: 'Values of one header', single: true }), {
      description: 'Extra headers on every response: name → list of values', default: {},
      keyPattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", keyExpected: 'invalid header name', expected: 'expected a mapping of header name to a list of values',
    }),
    net: optional(oneOf(['tcp'], { description: 'Listener network; only tcp', expected: 'only tcp is supported' })),
    prefix: optional(oneOf(['', '/'], { description: 'URL prefix; only the root', expected: 'not supported: serve stowage at the root of its host' })),
    tls: optional(section({
      certificate: path({ description: 'Server certificate chain, PEM (re-read when the file changes)' }),
      key: path({ description: 'Private key of the certificate, PEM (re-read when the file changes)' }),
      clientcas: list(path({ description: 'A CA certificate file, PEM' }), { description: 'Mutual TLS: clients must present a certificate signed by one of these CAs', default: [], single: true }),
      minimumtls: oneOf(['tls1.2', 'tls1.3'], { description: 'Oldest TLS version accepted', default: 'tls1.2', expected: 'expected tls1.2 or tls1.3 (TLS 1.0 and 1.1 are not offered)' }),
      ciphersuites: list(str({ description: 'A cipher suite, Go/IANA name (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)' }), { description: 'TLS 1.2 cipher suites offered (default: Node\'s); TLS 1.3 suites are fixed, as in registry:2', default: [] }),
      letsencrypt: refused('not supported: ACME needs the internet; give http.tls.certificate and http.tls.key', 'registry:2 Let\'s Encrypt; refused (no internet)'),
    }, { description: 'Serve HTTPS (HTTP/1.1) with this certificate' })),
    timeouts: section({
      headers: duration({ description: 'The request line and headers must arrive within this (slow clients)', default: '30s' }),
      keepalive: duration({ description: 'An idle keep-alive connection is closed after this', default: '75s' }),
      body_idle: duration({ description: 'A request body (upload) that sends nothing for this long is cut (0: never)', default: '60s' }),
    }, { description: 'How long a slow client may take' }),
    max_requests_per_connection: int({ description: 'Requests served on one keep-alive connection before it is closed (0: no limit)', default: 0, min: 0, max: 1_000_000 }),
    max_concurrent_uploads: int({ description: 'Upload and manifest PUT bodies received at once; more get 429 (0: no limit)', default: 128, min: 0, max: 1_000_000 }),
    debug: optional(section({
      addr: addr({ description: 'Address of the debug server: /debug/health (registry:2\'s JSON) and the Prometheus metrics, nothing else' }),
      prometheus: section({
        enabled: bool({ description: 'Serve Prometheus metrics on the debug server (registry:2: off by default)', default: true }),
        path: str({ description: 'Path of the metrics on the debug server', default: '/metrics', pattern: '^/[A-Za-z0-9._~/-]*$', expected: 'expected a URL path such as "/metrics"', example: '/prometheus' }),
      }),
    }, { description: 'registry:2 debug server, off unless set; keep it off public networks' })),
    http2: ignored('registry:2 HTTP/2 switch; not implemented'),
    h2c: ignored('registry:2 cleartext HTTP/2; not implemented'),
    draintimeout: duration({ description: 'On SIGTERM/SIGINT: how long in-flight requests, uploads and upstream fills may run before they are cut (0: at once); a second signal exits at once', default: '30s' }),
  }),
  proxy: optional(section({
    remoteurl: url({ description: 'registry:2 pull-through: the remote registry (becomes one upstream, and the default)' }),
    username: optional(str({ description: 'User name for the remote registry' })),
    password: optional(secret({ description: 'Password for the remote registry' })),
    ttl: duration({ description: 'How long cached content is kept (0: forever)', default: '0' }),
  }, { description: 'registry:2 pull-through cache block' })),
  metadata: section({
    path: optional(path({ description: 'The SQLite index (":memory:" allowed); default <rootdirectory>/stowage.sqlite, or :memory: for inmemory storage. Not used with database.enabled', literals: [':memory:'] })),
  }),
  database: DatabaseSchema,
  cluster: section({
    advertise_url: optional(url({
      description: 'How the other replicas reach this one, to stream a blob it is fetching from the upstream; default: http(s)://<this host\'s first non-loopback IPv4>:<port> (the listen address when it is loopback)',
      example: 'http://10.0.3.7:5000',
    })),
  }, { description: 'Replicas sharing one database and one storage (used with database.enabled)' }),
  cache: optional(section({
    max_size: size({ description: 'Cached content (never pushed content) is kept under this many bytes (0: no limit)', default: '0', example: '200GiB' }),
    low_watermark: percent({ description: 'Once usage passes max_size, images are evicted until it is below this share of max_size', default: '90%' }),
    pin: list(str({ description: 'An image pattern, repository:tag with globs', example: 'docker.io/library/alpine:3.*' }), {
      description: 'Cached images never evicted (full cache names: docker.io/library/alpine:3.*); `stowage prefetch --pin` adds more', default: [],
    }),
    min_age: duration({ description: 'An image used more recently than this is never evicted (0s: evicted as soon as no pull holds it, see pull_hold)', default: '1m' }),
    pull_hold: duration({ description: 'A pull in progress keeps its image whatever min_age says: an image whose repository had a manifest or blob request (or a blob streaming) within this time is not evicted', default: '1m' }),
    interval: duration({ description: 'How often usage is checked while serving', default: '30s' }),
  }, { description: 'Cache budget: least recently used cached images are evicted (image by image) to keep cached content under max_size' })),
  prefetch: PrefetchSchema,
  ranges: RangesSchema,
  upstreams: list(UpstreamSchema, { description: 'Upstream registries to pull through (none unless configured; the embedded defaults have docker.io)', default: [] }),
  default_upstream: optional(str({ description: 'The upstream un-prefixed names (library/ubuntu) go to; default: the proxy: block\'s upstream', example: 'docker.io' })),
  auth: optional(section({
    htpasswd: optional(section({
      realm: str({ description: 'Realm in the Basic challenge' }),
      path: path({ description: 'htpasswd file with bcrypt entries (htpasswd -B); re-read when it changes' }),
    }, { description: 'Basic auth against an htpasswd file' })),
    token: optional(section({
      realm: str({ description: 'URL of the token server, sent in the Bearer challenge' }),
      service: str({ description: 'This registry\'s name: the audience its tokens must carry' }),
      issuer: str({ description: 'Tokens must be issued (iss) by this name' }),
      rootcertbundle: optional(path({ description: 'PEM certificates token signing chains (x5c) must lead to' })),
      jwks: optional(path({ description: 'JSON Web Key Set file; tokens name their key with kid' })),
      autoredirect: bool({ description: 'Challenge with a realm on the host the client used (plus autoredirectpath)', default: false }),
      autoredirectpath: str({ description: 'Path of the token endpoint for autoredirect', default: '/auth/token' }),
      signingalgorithms: list(str({ description: 'A JWS algorithm (ES256, RS256, EdDSA, ...)' }), { description: 'Accepted token signing algorithms (default: every asymmetric one)', default: [] }),
    }, { description: 'Bearer tokens from a token server (registry:2 token auth)' })),
    silly: refused('not supported: silly auth lets anyone in', 'registry:2 test-only auth; refused'),
  }, { description: 'Authentication (registry:2): htpasswd or token' })),
  access: optional(list(section({
    repository: str({ description: 'Glob on the full repository name (`*` within one component, `**` any number of components)', example: 'team-a/**' }),
    pull: optional(list(str({ description: 'anonymous, authenticated, group:<name> or a user' }), { description: 'Who may pull' })),
    push: optional(list(str({ description: 'anonymous, authenticated, group:<name> or a user' }), { description: 'Who may push' })),
    delete: optional(list(str({ description: 'anonymous, authenticated, group:<name> or a user' }), { description: 'Who may delete' })),
  }, { description: 'An access rule' }), { description: 'Access rules; the first whose repository matches decides, none matching denies (without this key: registry:2 behaviour)' })),
  groups: map(list(str({ description: 'A user name' }), { description: 'Members of the group' }), { description: 'Groups for access rules (group:<name>)', default: {}, expected: 'expected a mapping of group name to a list of users' }),
  notifications: NotificationsSchema,
  policy: optional(section({
    keys: map(list(path({ description: 'A public key file, PEM (ECDSA P-256 or RSA); re-read when it changes' }), { description: 'The keys of one set', single: true }), {
      description: 'Named key sets: name → public key files', default: {},
      keyPattern: '^[A-Za-z0-9._-]{1,64}$', keyExpected: 'expected a key set name of 1-64 letters, digits, ".", "_" or "-"', expected: 'expected a mapping of key set name to a list of PEM files',
    }),
    rules: list(section({
      repository: str({ description: 'Glob on the full (cache) repository name, as in access rules (`*` within a component, `**` any number)', example: 'docker.io/acme/**' }),
      mode: oneOf(POLICY_MODES, { description: 'enforce: refuse what is not signed (403 DENIED); warn: serve it and log; off: no check', default: 'enforce' }),
      keys: list(str({ description: 'A key set name (under policy.keys)' }), { description: 'Key sets whose keys satisfy the rule: a signature by any one of their keys (none: nothing satisfies it)', default: [], single: true }),
      push: bool({ description: 'Also check manifests pushed into the repository (their signature must be pushed first)', default: false }),
    }, { description: 'A signature rule' }), { description: 'Signature rules; the first whose repository matches decides, none matching: no check', default: [] }),
    cache_size: int({ description: 'Verification results remembered (per manifest digest and key sets)', default: 10000, min: 1, max: 10_000_000 }),
  }, { description: 'Signature policy: which repositories need cosign signatures by which keys (see README, Signature policy)' })),
  health: HealthSchema,
  ui: section({
    enabled: bool({ description: 'The web page (/ui/) and its JSON API (/_stowage/api/), on the registry\'s listener with its TLS, auth and access rules', default: true }),
    session: duration({ description: 'How long a sign-in on the page lasts (the credentials are checked again on every request)', default: '12h' }),
  }, { description: 'The web page: browse repositories, the cache and what an export would carry' }),
  redis: ignored('registry:2 Redis cache; not used'),
  validation: ignored('registry:2 manifest validation options; not implemented'),
  compatibility: ignored('registry:2 schema1 compatibility; not implemented'),
  reporting: ignored('registry:2 bug reporting services; not implemented'),
  middleware: ignored('registry:2 middleware; not implemented'),
}, { description: 'stowage configuration' });

/** The configuration file's shape, decoded (durations in ms, paths absolute, defaults applied). */
export type ConfigFile = Static<typeof ConfigSchema>;

export type LogLevel = ConfigFile['log']['level'];

export interface UploadPurgingConfig {
  enabled: boolean;
  /** Uploads older than this are purged (registry:2 default 168h). */
  ageMs: number;
  /** How often to look (registry:2 default 24h). */
  intervalMs: number;
  dryrun: boolean;
}

export interface GcConfig {
  enabled: boolean;
  intervalMs: number;
  graceMs: number;
  deleteUntagged: boolean;
}

/** The cache budget, decoded: bytes, a fraction, milliseconds. */
export type CacheConfig = NonNullable<ConfigFile['cache']>;

type DriverName = (typeof DRIVERS)[number];
type DriverSections = Pick<ConfigFile['storage'], DriverName>;
/** The one configured driver: its name and its decoded section ({driver: 'filesystem', rootdirectory}). */
export type StorageConfig = { [D in DriverName]: { driver: D } & NonNullable<DriverSections[D]> }[DriverName];

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
  /** Tried in order before `url` (upstreams[].mirrors). */
  mirrors?: MirrorConfig[];
  /** Layer prefetch: the global prefetch: section overridden by upstreams[].prefetch (resolve.ts always sets it; absent: none). */
  prefetching?: PrefetchConfig;
  /** Ranged fetch of big blobs: the global ranges: section overridden by upstreams[].ranges (resolve.ts always sets it; absent: off). */
  ranging?: RangesConfig;
}

export interface PrefetchConfig { enabled: boolean; concurrency: number; maxBytes: number }

export interface RangesConfig { enabled: boolean; connections: number; chunkSize: number; minSize: number; startAfterMs: number }

/** One place an upstream's content can be asked for: its own URL, credentials, timeouts and breaker. */
export type EndpointConfig = Pick<UpstreamConfig, 'name' | 'url' | 'username' | 'password' | 'connectTimeoutMs' | 'headersTimeoutMs'
  | 'bodyTimeoutMs' | 'maxConcurrent' | 'breakerFailures' | 'breakerCooldownMs'>;

/** A mirror of an upstream; `name` is "<upstream>@<mirror host>", as logs, metrics and health show it. */
export type MirrorConfig = EndpointConfig;

/** Keys resolve.ts turns into the shapes below; every other section reaches Config as decoded. */
type Resolved = 'storage' | 'http' | 'proxy' | 'metadata' | 'upstreams' | 'default_upstream';

/** The typed configuration stowage runs with (resolve.ts makes it from ConfigFile). */
export interface Config extends Omit<ConfigFile, Resolved> {
  storage: {
    backend: StorageConfig;
    delete: { enabled: boolean };
    maintenance: { uploadpurging: UploadPurgingConfig; gc: GcConfig };
    /** registry:2's storage.redirect: disable=false answers blob GETs with a redirect to the store. */
    redirect: { disable: boolean };
  };
  http: Omit<ConfigFile['http'], 'addr' | 'host' | 'relativeurls'> & {
    /** Interface to listen on ("0.0.0.0" for ":5000"). */
    host: string;
    port: number;
    /** External base URL (registry:2 http.host) used for absolute Location headers. */
    externalUrl?: string;
    /** registry:2 http.relativeurls: Location headers without scheme and host. */
    relativeUrls: boolean;
  };
  /** better-sqlite3 database file; ":memory:" for the in-memory storage driver. */
  metadata: { path: string };
  upstreams: UpstreamConfig[];
  /** Name of the upstream that un-prefixed repository names go to, if any. */
  defaultUpstream?: string;
}
