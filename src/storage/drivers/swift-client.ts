/**
 * A small OpenStack Swift REST client on undici: authentication (v1.0 tempauth/swauth, Keystone
 * v2.0 and v3), a token refreshed on 401, object and container requests, retries with backoff
 * for 5xx and network errors when the request can be sent again. No maintained Node client for
 * Swift exists; this is only what the storage driver needs.
 */
import type { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';

export interface SwiftAuthOptions {
  authUrl: string;
  username: string;
  password: string;
  /** 1 (v1.0 tempauth), 2 (Keystone v2.0), 3 (Keystone v3); 0 or absent: guessed from the URL. */
  authVersion?: number;
  tenant?: string;
  tenantId?: string;
  domain?: string;
  domainId?: string;
  tenantDomain?: string;
  tenantDomainId?: string;
  trustId?: string;
  region?: string;
  /** public (default), internal or admin. */
  endpointType?: string;
  insecureSkipVerify?: boolean;
}

export interface SwiftSession { token: string; storageUrl: string }

export class SwiftHttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'SwiftHttpError';
  }
}

export interface SwiftRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE' | 'COPY';
  /** Object name within the container; undefined for the container itself; null for the account. */
  object?: string | null;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** A Buffer can be sent again after a 401 or a 5xx; a stream cannot. */
  body?: Buffer | Readable;
  signal?: AbortSignal;
}

export interface SwiftResponse {
  status: number;
  headers: Record<string, string>;
  body: Dispatcher.ResponseData['body'];
}

const RETRY_DELAYS_MS = [100, 400, 1600];

function authVersionOf(o: SwiftAuthOptions): number {
  if (o.authVersion) return o.authVersion;
  if (/\/v3\/?$/.test(o.authUrl)) return 3;
  if (/\/v2(\.0)?\/?$/.test(o.authUrl)) return 2;
  return 1;
}

const flat = (h: Record<string, string | string[] | undefined>): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
};

export class SwiftClient {
  readonly dispatcher: Agent;
  private session: Promise<SwiftSession> | undefined;

  constructor(private readonly auth: SwiftAuthOptions, readonly container: string) {
    this.dispatcher = new Agent({
      connections: 64,
      connectTimeout: 10_000,
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
      connect: { rejectUnauthorized: !auth.insecureSkipVerify },
    });
  }

  /** The current session, authenticating when there is none. */
  getSession(): Promise<SwiftSession> {
    if (!this.session) {
      this.session = this.authenticate();
      this.session.catch(() => { this.session = undefined; });
    }
    return this.session;
  }

  private async authenticate(): Promise<SwiftSession> {
    const version = authVersionOf(this.auth);
    if (version === 1) return this.authV1();
    if (version === 2) return this.authV2();
    return this.authV3();
  }

  private async authV1(): Promise<SwiftSession> {
    const r = await request(this.auth.authUrl, {
      method: 'GET', dispatcher: this.dispatcher,
      headers: { 'X-Auth-User': this.auth.username, 'X-Auth-Key': this.auth.password },
    });
    await r.body.dump();
    const h = flat(r.headers);
    if (r.statusCode >= 300 || !h['x-auth-token'] || !h['x-storage-url']) throw new SwiftHttpError(r.statusCode, `swift auth v1.0 failed: ${r.statusCode}`);
    return { token: h['x-auth-token'], storageUrl: h['x-storage-url'] };
  }

  private async authV2(): Promise<SwiftSession> {
    const a = this.auth;
    const body = {
      auth: {
        passwordCredentials: { username: a.username, password: a.password },
        ...(a.tenantId ? { tenantId: a.tenantId } : a.tenant ? { tenantName: a.tenant } : {}),
      },
    };
    const r = await request(`${a.authUrl.replace(/\/$/, '')}/tokens`, {
      method: 'POST', dispatcher: this.dispatcher, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    if (r.statusCode >= 300) {
      await r.body.dump();
      throw new SwiftHttpError(r.statusCode, `swift auth v2.0 failed: ${r.statusCode}`);
    }
    const json = await r.body.json() as {
      access: { token: { id: string }; serviceCatalog: Array<{ type: string; endpoints: Array<Record<string, string>> }> };
    };
    const kind = `${a.endpointType ?? 'public'}URL`;
    const endpoint = json.access.serviceCatalog.find((s) => s.type === 'object-store')?.endpoints
      .find((e) => !a.region || e.region === a.region)?.[kind];
    if (!endpoint) throw new SwiftHttpError(0, `swift auth v2.0: no object-store endpoint${a.region ? ` in region ${a.region}` : ''}`);
    return { token: json.access.token.id, storageUrl: endpoint };
  }

  private async authV3(): Promise<SwiftSession> {
    const a = this.auth;
    const userDomain = a.domainId ? { id: a.domainId } : { name: a.domain ?? 'Default' };
    const projectDomain = a.tenantDomainId ? { id: a.tenantDomainId } : a.tenantDomain ? { name: a.tenantDomain } : userDomain;
    const scope = a.trustId ? { 'OS-TRUST:trust': { id: a.trustId } }
      : a.tenantId ? { project: { id: a.tenantId } }
        : a.tenant ? { project: { name: a.tenant, domain: projectDomain } } : undefined;
    const body = {
      auth: {
        identity: { methods: ['password'], password: { user: { name: a.username, password: a.password, domain: userDomain } } },
        ...(scope ? { scope } : {}),
      },
    };
    const r = await request(`${a.authUrl.replace(/\/$/, '')}/auth/tokens`, {
      method: 'POST', dispatcher: this.dispatcher, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    if (r.statusCode >= 300) {
      await r.body.dump();
      throw new SwiftHttpError(r.statusCode, `swift auth v3 failed: ${r.statusCode}`);
    }
    const token = flat(r.headers)['x-subject-token'];
    const json = await r.body.json() as {
      token: { catalog: Array<{ type: string; endpoints: Array<{ interface: string; region?: string; region_id?: string; url: string }> }> };
    };
    const iface = a.endpointType ?? 'public';
    const endpoint = json.token.catalog.find((s) => s.type === 'object-store')?.endpoints
      .find((e) => e.interface === iface && (!a.region || e.region === a.region || e.region_id === a.region))?.url;
    if (!token || !endpoint) throw new SwiftHttpError(0, `swift auth v3: no token or no object-store endpoint${a.region ? ` in region ${a.region}` : ''}`);
    return { token, storageUrl: endpoint };
  }

  /** URL path of an object, for the manifest and temp URLs: /v1/AUTH_x/container/name. */
  url(session: SwiftSession, object?: string | null): string {
    const base = session.storageUrl.replace(/\/$/, '');
    if (object === null) return base;
    const container = `${base}/${encodeURIComponent(this.container)}`;
    return object === undefined ? container : `${container}/${object.split('/').map(encodeURIComponent).join('/')}`;
  }

  /**
   * Sends a request. 401: authenticate again and resend once. 5xx or a network error: resend
   * with backoff if the body can be sent again. Other statuses are returned to the caller.
   */
  async send(req: SwiftRequest): Promise<SwiftResponse> {
    const replayable = !(req.body && typeof (req.body as Readable).pipe === 'function');
    let reauthed = false;
    for (let attempt = 0; ; attempt++) {
      const session = await this.getSession();
      const qs = req.query ? `?${new URLSearchParams(req.query).toString()}` : '';
      let r: Dispatcher.ResponseData;
      try {
        r = await request(`${this.url(session, req.object)}${qs}`, {
          method: req.method, dispatcher: this.dispatcher,
          headers: { ...req.headers, 'X-Auth-Token': session.token },
          ...(req.body !== undefined ? { body: req.body } : {}),
          ...(req.signal ? { signal: req.signal } : {}),
        });
      } catch (e) {
        if (req.signal?.aborted || !replayable || attempt >= RETRY_DELAYS_MS.length) throw e;
        await delay(RETRY_DELAYS_MS[attempt]!);
        continue;
      }
      if (r.statusCode === 401 && !reauthed && replayable) {
        await r.body.dump();
        reauthed = true;
        if (this.session === undefined || (await this.session.catch(() => undefined))?.token === session.token) this.session = undefined;
        attempt--;
        continue;
      }
      if (r.statusCode >= 500 && replayable && attempt < RETRY_DELAYS_MS.length) {
        await r.body.dump();
        await delay(RETRY_DELAYS_MS[attempt]!);
        continue;
      }
      return { status: r.statusCode, headers: flat(r.headers), body: r.body };
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms / 2 + Math.random() * ms / 2));
