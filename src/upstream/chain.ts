/**
 * An upstream as the proxy sees it: its mirrors in order, then its own URL, each an UpstreamClient
 * with its own connections, credentials, tokens and circuit breaker (so no credential ever reaches
 * another endpoint, nor another endpoint's token realm or redirect target). A request goes to the
 * first endpoint whose breaker lets it through and falls through to the next on anything but an
 * answer: a refused connection, a timeout, a 5xx, an open breaker, a refusal of credentials, a
 * 429, and a 404 (a partial mirror lacks what the next one has, as containerd's hosts.toml treats
 * it). The last endpoint's answer is final, so a mirror's 404 never becomes the upstream's.
 * Content is verified by digest in proxy/ whichever endpoint served it; each response says which
 * one did (`servedBy`), and the log and metrics say so too. A mirror's breaker is probed apart
 * from the requests once its cooldown is over (the upstream's own is probed by a request, as
 * there is nothing to fall through to).
 */
import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/schema.js';
import type { Metrics } from '../metrics.js';
import type { Digest } from '../oci/digest.js';
import { UpstreamClient, type RegistryClient, type UpstreamResponse } from './client.js';
import { UpstreamError } from './errors.js';
import type { BreakerOptions } from './health.js';

/** `log` should carry the upstream's name (main.ts binds it); lines add the mirror. */
export interface ChainDeps { log: Logger; metrics?: Metrics; breaker?: BreakerOptions }

type Kind = 'manifest' | 'blob' | 'referrers';

interface Attempt { endpoint: UpstreamClient; label: string }

export class MirrorChain implements RegistryClient {
  readonly name: string;
  /** The mirrors in order, then the upstream's own URL. */
  readonly endpoints: UpstreamClient[];
  private readonly labels: string[];

  constructor(cfg: UpstreamConfig, private readonly deps: ChainDeps) {
    this.name = cfg.name;
    const mirrors = cfg.mirrors ?? [];
    this.endpoints = [...mirrors, cfg].map((e) => new UpstreamClient(e, {
      log: e === cfg ? deps.log : deps.log.child({ mirror: e.url }), ...(deps.breaker ? { breaker: deps.breaker } : {}),
    }));
    this.labels = this.endpoints.map((e) => new URL(e.url).host);
  }

  manifest(repo: string, reference: string, opts: { method: 'GET' | 'HEAD'; accept: string[]; signal?: AbortSignal }): Promise<UpstreamResponse> {
    return this.first('manifest', repo, reference, opts.signal, (e) => e.manifest(repo, reference, opts)) as Promise<UpstreamResponse>;
  }

  blob(repo: string, digest: Digest, opts: { method?: 'GET' | 'HEAD'; signal?: AbortSignal; range?: string } = {}): Promise<UpstreamResponse> {
    return this.first('blob', repo, digest, opts.signal, (e) => e.blob(repo, digest, opts)) as Promise<UpstreamResponse>;
  }

  /** The first endpoint that supports the referrers API answers; undefined when none does. */
  referrers(repo: string, digest: Digest, opts: { artifactType?: string; signal?: AbortSignal } = {}): Promise<UpstreamResponse | undefined> {
    return this.first('referrers', repo, digest, opts.signal, (e) => e.referrers(repo, digest, opts));
  }

  /** A mirror caught serving content that failed verification is skipped until its cooldown ends. */
  distrust(servedBy: string | undefined, reason: string): void {
    const i = servedBy === undefined ? -1 : this.labels.indexOf(servedBy);
    // The upstream's own URL is never skipped for it: there is nothing after it to ask.
    if (i < 0 || i === this.endpoints.length - 1) return;
    this.endpoints[i]!.breaker.trip();
    this.deps.metrics?.upstreamFallthrough.inc({ upstream: this.name, mirror: servedBy!, reason: 'distrusted' });
    this.deps.log.warn({ mirror: servedBy, reason }, 'mirror served content that failed verification; skipped until its cooldown ends');
  }

  async close(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => e.close()));
  }

  private async first(kind: Kind, repo: string, reference: string, signal: AbortSignal | undefined,
    call: (e: UpstreamClient) => Promise<UpstreamResponse | undefined>): Promise<UpstreamResponse | undefined> {
    const passed: string[] = [];
    const last = this.endpoints.length - 1;
    for (let i = 0; i < last; i++) {
      const attempt = { endpoint: this.endpoints[i]!, label: this.labels[i]! };
      const state = attempt.endpoint.breaker.state();
      if (state !== 'closed') {
        if (state === 'half-open') this.probe(attempt);
        this.passOn(attempt, kind, repo, reference, 'circuit-open');
        passed.push(`${attempt.label}: circuit-open`);
        continue;
      }
      let res: UpstreamResponse | undefined;
      try {
        res = await call(attempt.endpoint);
      } catch (err) {
        if (signal?.aborted) throw err;
        this.passOn(attempt, kind, repo, reference, err instanceof UpstreamError ? err.kind : 'error', (err as Error).message);
        passed.push(`${attempt.label}: ${err instanceof UpstreamError ? err.kind : 'error'}`);
        continue;
      }
      if (res && res.status !== 404) return this.served(attempt, kind, repo, reference, res, passed);
      this.passOn(attempt, kind, repo, reference, res ? 'not-found' : 'unsupported');
      passed.push(`${attempt.label}: ${res ? 'not-found' : 'unsupported'}`);
    }
    const final = { endpoint: this.endpoints[last]!, label: this.labels[last]! };
    const res = await call(final.endpoint);
    return res && this.served(final, kind, repo, reference, res, passed);
  }

  /**
   * A mirror whose cooldown is over is probed in the background while the request goes on to the
   * next endpoint: a mirror that is still dead (a hung one especially) costs no client a timeout.
   */
  private probe(a: Attempt): void {
    if (!a.endpoint.breaker.allow()) return; // another request started the probe
    void a.endpoint.probe().then((ok) => {
      this.deps.log[ok ? 'info' : 'debug']({ mirror: a.label }, ok ? 'mirror answers again' : 'mirror still down');
    });
  }

  private served(a: Attempt, kind: Kind, repo: string, reference: string, res: UpstreamResponse, passed: string[]): UpstreamResponse {
    this.deps.metrics?.upstreamServed.inc({ upstream: this.name, served_by: a.label, kind });
    // With mirrors, every upstream answer says where it came from (cold fills, revalidations).
    if (this.endpoints.length > 1) {
      this.deps.log.info({ servedBy: a.label, kind, repo, reference, status: res.status, ...(passed.length ? { passed } : {}) },
        'upstream request served');
    }
    return { ...res, servedBy: a.label };
  }

  private passOn(a: Attempt, kind: Kind, repo: string, reference: string, reason: string, detail?: string): void {
    this.deps.metrics?.upstreamFallthrough.inc({ upstream: this.name, mirror: a.label, reason });
    // An open breaker and a partial mirror's 404 are routine; a mirror failing is worth a warning.
    const routine = reason === 'circuit-open' || reason === 'not-found' || reason === 'unsupported';
    this.deps.log[routine ? 'debug' : 'warn']({ mirror: a.label, kind, repo, reference, reason, ...(detail ? { err: detail } : {}) },
      'mirror passed the request on to the next');
  }
}
