/**
 * Upstream authentication: WWW-Authenticate challenges (Bearer token auth as Docker Hub, ghcr.io
 * and registry:2 use it, and Basic) and the token fetch. Tokens are cached per upstream and scope
 * by the client until shortly before they expire.
 */
import { request, type Dispatcher } from 'undici';

export interface Challenge { scheme: string; params: Record<string, string> }

/**
 * Parses a WWW-Authenticate header: one or more challenges, each a scheme followed by
 * comma-separated params whose values may be quoted (and contain commas and spaces).
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const re = /\s*,?\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?:\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*))?/gy;
  let current: Challenge | undefined;
  let m: RegExpExecArray | null;
  while (re.lastIndex < header.length && (m = re.exec(header)) !== null) {
    if (m[0].trim() === '') break;
    const [, token, rawValue, quoted] = m;
    if (rawValue === undefined) {
      current = { scheme: token!.toLowerCase(), params: {} };
      out.push(current);
    } else if (current) {
      current.params[token!.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : rawValue;
    }
  }
  return out;
}

export interface Credentials { username: string; password: string }

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

export interface Token { token: string; expiresInMs: number }

/** Asks a token realm for a token (GET realm?service=&scope=, Basic credentials when configured). */
export async function fetchToken(challenge: Challenge, credentials: Credentials | undefined, dispatcher: Dispatcher,
  signal?: AbortSignal): Promise<Token> {
  const realm = challenge.params.realm;
  if (!realm) throw new Error('Bearer challenge without realm');
  const url = new URL(realm);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`token realm is not http(s): ${url.protocol}`);
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  for (const scope of (challenge.params.scope ?? '').split(' ').filter(Boolean)) url.searchParams.append('scope', scope);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (credentials) headers.authorization = basicHeader(credentials);
  const res = await request(url, { method: 'GET', headers, dispatcher, ...(signal ? { signal } : {}) });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`token realm answered ${res.statusCode}`);
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw new Error('token realm answered with invalid JSON');
  }
  const token = typeof doc.token === 'string' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : undefined;
  if (!token) throw new Error('token realm answered without a token');
  // Clients treat expires_in under 60 (or missing) as 60 seconds.
  const expiresIn = typeof doc.expires_in === 'number' && doc.expires_in >= 60 ? doc.expires_in : 60;
  return { token, expiresInMs: expiresIn * 1000 };
}
