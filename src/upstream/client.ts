/**
 * An HTTP client for one registry endpoint (an upstream's URL, or one of its mirrors): auth
 * challenges answered and tokens cached per scope for their lifetime, redirects followed by hand
 * (Authorization is dropped when a redirect leaves the endpoint's origin, as Docker Hub's CDN
 * redirects require), failures classified as UpstreamError, and a circuit breaker in front.
 * Bodies are streams; nothing here buffers a blob.
 *
 * Round trips: one undici Agent per endpoint keeps connections alive per origin (the registry,
 * its token realm, the CDN it redirects to), so a pull pays each handshake once. Once a Bearer
 * challenge has named the realm, a new scope's token is fetched before its first request instead
 * of after a 401; concurrent requests needing the same token share one fetch.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { Agent, request, type Dispatcher } from 'undici';
import type { EndpointConfig } from '../config/schema.js';
import type { Digest } from '../oci/digest.js';
import { basicHeader, fetchToken, parseChallenges, type Challenge, type Credentials } from './auth.js';
import { UpstreamError } from './errors.js';
import { CircuitBreaker, type BreakerOptions } from './health.js';

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** null for HEAD. The caller must consume or destroy it. */
  body: Readable | null;
  /** Which endpoint answered (its URL's host), when a chain of mirrors was asked. */
  servedBy?: string;
  /**
   * Set when the answer came from where a redirect led (a CDN): asks that URL again, with other
   * headers (another Range of the same blob), skipping the registry's round trip. The URL may be
   * signed and expire: a caller treats anything but the answer it expects as a reason to go
   * through the registry again. Statuses are not classified here (no breaker, no UpstreamError
   * for a 4xx): the caller reads `status`.
   */
  again?: (headers: Record<string, string>, signal?: AbortSignal) => Promise<UpstreamResponse>;
}

/** What the proxy asks of an upstream: one endpoint, or a chain of mirrors before it. */
export interface RegistryClient {
  readonly name: string;
  /** The endpoints behind it, mirrors first and the upstream's own URL last (one for a lone client). */
  readonly endpoints: readonly UpstreamClient[];
  manifest(repo: string, reference: string, opts: { method: 'GET' | 'HEAD'; accept: string[]; signal?: AbortSignal }): Promise<UpstreamResponse>;
  blob(repo: string, digest: Digest, opts?: { method?: 'GET' | 'HEAD'; signal?: AbortSignal; range?: string }): Promise<UpstreamResponse>;
  referrers(repo: string, digest: Digest, opts?: { artifactType?: string; signal?: AbortSignal }): Promise<UpstreamResponse | undefined>;
  /**
   * Content from `servedBy` failed verification: a mirror that served it is skipped (its breaker
   * opens) so the next request goes to the next endpoint. Optional: a lone endpoint has no other.
   */
  distrust?(servedBy: string | undefined, reason: string): void;
  close(): Promise<void>;
}

/** What the page shows about an upstream: how its answers have been lately, as the pulls found. */
export interface UpstreamStats {
  /** Time to response headers of the last answered request, and a moving average of it. */
  lastLatencyMs?: number;
  averageLatencyMs?: number;
  lastSuccessAt?: number;
  lastError?: { message: string; at: number };
}

const MAX_REDIRECTS = 5;
/**
 * How much of an upstream body undici buffers ahead of its reader. Its 64 KiB default stops the
 * socket whenever the fill pauses (hashing, a disk write), and the upstream's TCP window then
 * takes a round trip to open again. 1 MiB keeps the transfer streaming (the kernel's socket
 * buffer holds the rest); 4 MiB measured no faster and held 4 MiB per paused fill: 8 clients
 * pulling one 6-blob image cold peaked at 191 MiB RSS with 4 MiB, 155 MiB with 1 MiB.
 */
const BODY_BUFFER = 1024 * 1024;
const TOKEN_MARGIN_MS = 10_000;

export class UpstreamClient implements RegistryClient {
  get endpoints(): readonly UpstreamClient[] { return [this]; }
  readonly name: string;
  readonly url: string;
  readonly breaker: CircuitBreaker;
  readonly stats: UpstreamStats = {};
  private readonly agent: Agent;
  private readonly tokens = new LRUCache<string, string>({ max: 10_000, ttlAutopurge: false });
  private readonly credentials: Credentials | undefined;
  /** Token fetches in flight, by scope: requests that need the same token wait for one fetch. */
  private readonly pendingTokens = new Map<string, Promise<void>>();
  /** The realm and service of the last Bearer challenge: a new scope's token is fetched up front. */
  private realm: Challenge | undefined;
  /** Set once the upstream has asked for Basic auth: later requests send it up front. */
  private basic = false;

  constructor(private readonly cfg: EndpointConfig, private readonly deps: { log: Logger; breaker?: BreakerOptions }) {
    this.name = cfg.name;
    this.url = cfg.url;
    this.credentials = cfg.username !== undefined && cfg.password !== undefined ? { username: cfg.username, password: cfg.password } : undefined;
    this.breaker = new CircuitBreaker({ threshold: cfg.breakerFailures, cooldownMs: cfg.breakerCooldownMs, ...deps.breaker });
    this.agent = new Agent({
      connections: cfg.maxConcurrent,
      connect: { timeout: cfg.connectTimeoutMs },
      headersTimeout: cfg.headersTimeoutMs,
      bodyTimeout: cfg.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  manifest(repo: string, reference: string, opts: { method: 'GET' | 'HEAD'; accept: string[]; signal?: AbortSignal }): Promise<UpstreamResponse> {
    return this.send(repo, `/v2/${repo}/manifests/${reference}`,
      opts.method, { accept: opts.accept.join(', ') }, opts.signal);
  }

  blob(repo: string, digest: Digest, opts: { method?: 'GET' | 'HEAD'; signal?: AbortSignal; range?: string } = {}): Promise<UpstreamResponse> {
    return this.send(repo, `/v2/${repo}/blobs/${digest}`, opts.method ?? 'GET', opts.range ? { range: opts.range } : {}, opts.signal);
  }

  /** The upstream's referrers index, or undefined if it does not support the referrers API. */
  async referrers(repo: string, digest: Digest, opts: { artifactType?: string; signal?: AbortSignal } = {}): Promise<UpstreamResponse | undefined> {
    const query = opts.artifactType ? `?artifactType=${encodeURIComponent(opts.artifactType)}` : '';
    const res = await this.send(repo, `/v2/${repo}/referrers/${digest}${query}`, 'GET',
      { accept: 'application/vnd.oci.image.index.v1+json' }, opts.signal);
    const type = String(res.headers['content-type'] ?? '');
    if (res.status === 200 && type.includes('application/vnd.oci.image.index.v1+json')) return res;
    res.body?.destroy();
    return undefined;
  }

  /**
   * Asks GET /v2/ whether the endpoint answers at all (any status under 500, 401 included) and
   * tells the breaker: the half-open probe of a mirror, made beside the requests instead of with
   * one of them, so that no client waits for a mirror that is still dead.
   */
  async probe(): Promise<boolean> {
    try {
      const res = await request(`${this.cfg.url}/v2/`, { method: 'GET', headers: { 'user-agent': 'stowage' }, dispatcher: this.agent as Dispatcher });
      await res.body.dump();
      if (res.statusCode < 500) {
        this.breaker.success();
        return true;
      }
    } catch {
      // counted below
    }
    this.breaker.failure();
    return false;
  }

  /** Shutdown: in-flight upstream requests are abandoned (their staging files are purged later). */
  async close(): Promise<void> {
    await this.agent.destroy();
  }

  private async send(repo: string, path: string, method: 'GET' | 'HEAD',
    extraHeaders: Record<string, string>, signal?: AbortSignal): Promise<UpstreamResponse> {
    if (!this.breaker.allow()) throw new UpstreamError('circuit-open', this.name, 'circuit open after repeated failures; not contacted');
    const scope = `repository:${repo}:pull`;
    const started = Date.now();
    try {
      const res = await this.exchange(scope, `${this.cfg.url}${path}`, method, extraHeaders, signal);
      this.breaker.neutral();
      if (res.status < 500) this.breaker.success();
      this.noteAnswer(Date.now() - started);
      return res;
    } catch (err) {
      const e = err instanceof UpstreamError ? err : this.classify(err);
      if (e.isOutage) this.breaker.failure();
      else this.breaker.neutral();
      this.stats.lastError = { message: e.message, at: Date.now() };
      throw e;
    }
  }

  private noteAnswer(ms: number): void {
    const s = this.stats;
    s.lastLatencyMs = ms;
    s.averageLatencyMs = s.averageLatencyMs === undefined ? ms : Math.round(s.averageLatencyMs * 0.8 + ms * 0.2);
    s.lastSuccessAt = Date.now();
  }

  /** One logical request: auth retry and redirects included. */
  private async exchange(scope: string, startUrl: string, method: 'GET' | 'HEAD', extraHeaders: Record<string, string>,
    signal?: AbortSignal): Promise<UpstreamResponse> {
    const origin = new URL(startUrl).origin;
    let url = startUrl;
    let triedAuth = false;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameOrigin = new URL(url).origin === origin;
      if (hop === 0 && !triedAuth && this.realm && !this.tokens.has(scope)) await this.tokenUpFront(scope, signal);
      const headers: Record<string, string> = { 'user-agent': 'stowage', ...extraHeaders };
      const auth = sameOrigin ? this.authorization(scope) : undefined;
      if (auth) headers.authorization = auth;
      const res = await this.requestOnTime(url, { method, headers }, signal);
      const status = res.statusCode;
      if (status === 401 && sameOrigin && !triedAuth) {
        await res.body.dump();
        triedAuth = true;
        await this.answerChallenge(scope, String(res.headers['www-authenticate'] ?? ''), signal);
        hop--;
        continue;
      }
      if (status >= 300 && status < 400 && res.headers.location) {
        await res.body.dump();
        url = new URL(String(res.headers.location), url).toString();
        continue;
      }
      if (status === 200 || status === 206 || status === 404) {
        if (method === 'HEAD' || status === 404) await res.body.dump().catch(() => undefined);
        const answer: UpstreamResponse = { status, headers: res.headers, body: method === 'HEAD' || status === 404 ? null : res.body };
        if (url !== startUrl && method === 'GET' && status !== 404) answer.again = this.againAt(url, sameOrigin ? scope : undefined);
        return answer;
      }
      await res.body.dump().catch(() => undefined);
      if (status === 429) {
        const ra = Number(res.headers['retry-after']);
        throw new UpstreamError('rate-limited', this.name, 'rate limited (429)', { status, ...(Number.isFinite(ra) ? { retryAfter: ra } : {}) });
      }
      if (status >= 500) throw new UpstreamError('unavailable', this.name, `answered ${status}`, { status });
      if (status === 401 || status === 403) throw new UpstreamError('unauthorized', this.name, `refused access (${status})`, { status });
      throw new UpstreamError('bad-response', this.name, `answered ${status}`, { status });
    }
    throw new UpstreamError('bad-response', this.name, 'too many redirects');
  }

  /** A GET of a URL a redirect resolved to, on this endpoint's connections (see UpstreamResponse.again). */
  private againAt(url: string, scope: string | undefined): NonNullable<UpstreamResponse['again']> {
    return async (extra, signal) => {
      const headers: Record<string, string> = { 'user-agent': 'stowage', ...extra };
      // Credentials go only where they went the first time: the endpoint's own origin.
      const auth = scope ? this.authorization(scope) : undefined;
      if (auth) headers.authorization = auth;
      const res = await this.requestOnTime(url, { method: 'GET', headers }, signal);
      return { status: res.statusCode, headers: res.headers, body: res.body };
    };
  }

  /**
   * One HTTP request whose response headers must come within the headers timeout, counted from
   * the request's start on a precise timer. undici checks its timeouts on a coarse clock (its
   * 300 ms headers timeout fired after 1,008 ms here; a hung mirror with a 3 s one cost a pull
   * 3.45 s). The request is not aborted at the deadline (undici then opens another connection to
   * the endpoint): the caller moves on, and undici's own timeout ends the request a little later;
   * an answer that comes meanwhile is dropped.
   */
  private async requestOnTime(url: string, options: { method: 'GET' | 'HEAD'; headers: Record<string, string> }, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    const ms = this.cfg.headersTimeoutMs;
    const pending = request(url, { ...options, dispatcher: this.agent as Dispatcher, highWaterMark: BODY_BUFFER, ...(signal ? { signal } : {}) });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new UpstreamError('timeout', this.name, `no response headers within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([pending, late]);
    } catch (err) {
      if (err instanceof UpstreamError) pending.then((res) => res.body.destroy(), () => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private authorization(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token) return `Bearer ${token}`;
    if (this.basic && this.credentials) return basicHeader(this.credentials);
    return undefined;
  }

  private async answerChallenge(scope: string, header: string, signal?: AbortSignal): Promise<void> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      if (bearer.params.realm) this.realm = { scheme: 'bearer', params: { realm: bearer.params.realm, ...(bearer.params.service ? { service: bearer.params.service } : {}) } };
      try {
        // A challenge without a scope (some registries send none) gets the one this request needs.
        await this.fetchTokenOnce(scope, bearer.params.scope ? bearer : { ...bearer, params: { ...bearer.params, scope } }, signal);
      } catch (err) {
        throw new UpstreamError('unauthorized', this.name, `token fetch failed: ${(err as Error).message}`, { cause: err });
      }
      return;
    }
    if (challenges.some((c) => c.scheme === 'basic') && this.credentials) {
      this.basic = true;
      return;
    }
    throw new UpstreamError('unauthorized', this.name, 'asked for credentials stowage does not have');
  }

  /**
   * A token for a scope not seen yet, from the realm an earlier challenge named: saves the 401
   * round trip of the first request to each new repository. A failure here is not final: the
   * request goes out without a token and the challenge path decides.
   */
  private async tokenUpFront(scope: string, signal?: AbortSignal): Promise<void> {
    const realm = this.realm!;
    await this.fetchTokenOnce(scope, { scheme: 'bearer', params: { ...realm.params, scope } }, signal).catch((err: unknown) => {
      this.deps.log.debug({ scope, err: (err as Error).message }, 'token fetch ahead of the request failed; asking without one');
    });
  }

  /** One token fetch per scope at a time; the token is kept until shortly before it expires. */
  private fetchTokenOnce(scope: string, challenge: Challenge, signal?: AbortSignal): Promise<void> {
    let pending = this.pendingTokens.get(scope);
    if (!pending) {
      // Shared by every request waiting for this scope, so no single request's signal cuts it;
      // the agent's timeouts bound it.
      pending = fetchToken(challenge, this.credentials, this.agent as Dispatcher).then((t) => {
        this.tokens.set(scope, t.token, { ttl: Math.max(1_000, t.expiresInMs - TOKEN_MARGIN_MS) });
        this.deps.log.debug({ scope, expiresInMs: t.expiresInMs }, 'upstream token fetched');
      }).finally(() => this.pendingTokens.delete(scope));
      this.pendingTokens.set(scope, pending);
    }
    return signal ? raceAbort(pending, signal) : pending;
  }

  private classify(err: unknown): UpstreamError {
    const code = (err as { code?: string })?.code ?? '';
    const message = (err as Error)?.message ?? String(err);
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new UpstreamError('timeout', this.name, `timed out (${code})`, { cause: err });
    }
    if ((err as Error)?.name === 'AbortError') return new UpstreamError('timeout', this.name, 'request aborted', { cause: err });
    return new UpstreamError('unavailable', this.name, `${code || 'error'}: ${message}`, { cause: err });
  }
}

/** Waits for a shared promise, giving up (without cancelling it) when this caller's signal fires. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}
