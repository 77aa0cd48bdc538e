/**
 * `stowage healthcheck`: asks a running stowage, at the address its config names, whether it is
 * healthy. The container image's HEALTHCHECK runs it (the image has no curl). /v2/ answers 503
 * while a health check fails; 401 means an auth-enabled registry that is up.
 */
import type { Config } from '../config/schema.js';

export async function probeHealth(config: Config, timeoutMs = 4000): Promise<{ ok: boolean; detail: string }> {
  const url = `http://${loopbackFor(config.http.host)}:${config.http.port}/v2/`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return { ok: res.status === 200 || res.status === 401, detail: `${url}: ${res.status}` };
  } catch (err) {
    return { ok: false, detail: `${url}: ${(err as Error).message}` };
  }
}

/** A wildcard listen address is probed on loopback. */
function loopbackFor(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
