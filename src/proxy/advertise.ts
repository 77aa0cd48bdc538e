/**
 * The URL other replicas reach this one at (cluster.advertise_url, or derived): the listen address
 * when it is a specific one, else this host's first non-internal IPv4 (what a pod's IP is in a
 * container orchestrator), with the scheme this server speaks.
 */
import { networkInterfaces } from 'node:os';

export function advertiseUrl(configured: string | undefined, listen: { host: string; port: number; tls: boolean }): string {
  if (configured) return configured.replace(/\/+$/, '');
  const scheme = listen.tls ? 'https' : 'http';
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::' || listen.host === '';
  const host = wildcard ? firstExternalIPv4() ?? '127.0.0.1' : listen.host;
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${listen.port}`;
}

function firstExternalIPv4(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}
