/**
 * Copy-paste pull commands for a stored image: the prefix route (HOST/docker.io/library/alpine),
 * which every client can use, and the mirror routes where they apply: Docker's registry-mirrors
 * for the default upstream when it is Docker Hub, containerd's hosts.toml mirror (?ns=) for any
 * upstream. Plain-HTTP registries get each client's flag for it.
 */
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';

export interface PullCommand {
  client: 'docker' | 'podman' | 'containerd' | 'skopeo';
  command: string;
  /** What the command needs set up first (a mirror entry), when it uses a mirror route. */
  note?: string;
}

export interface Endpoint {
  /** host[:port] clients reach this registry at. */
  host: string;
  tls: boolean;
}

/** Where clients reach us: http.host (the external URL) when set, else what this request was sent to. */
export function endpointOf(req: FastifyRequest, config: Config, serverTls: boolean): Endpoint {
  if (config.http.externalUrl) {
    const u = new URL(config.http.externalUrl);
    return { host: u.host, tls: u.protocol === 'https:' };
  }
  const proto = (req.headers['x-forwarded-proto'] as string | undefined)?.split(',')[0]?.trim();
  const host = (req.headers['x-forwarded-host'] as string | undefined)?.split(',')[0]?.trim() ?? req.headers.host ?? 'localhost';
  return { host, tls: proto ? proto === 'https' : serverTls };
}

export interface ImageRoute {
  /** The stored repository name (docker.io/library/alpine, team/app). */
  repo: string;
  /** ":tag" or "@sha256:...". */
  ref: string;
  /** Cached content: its upstream's name and the repository there (library/alpine). */
  upstream?: { name: string; remoteRepo: string; isDefault: boolean };
}

export function pullCommands(at: Endpoint, image: ImageRoute): PullCommand[] {
  const full = `${at.host}/${image.repo}${image.ref}`;
  const base = image.repo.slice(image.repo.lastIndexOf('/') + 1);
  const out: PullCommand[] = [
    { client: 'docker', command: `docker pull ${full}`, ...(at.tls ? {} : { note: `plain HTTP: list ${at.host} under insecure-registries in /etc/docker/daemon.json` }) },
    { client: 'podman', command: `podman pull ${at.tls ? '' : '--tls-verify=false '}${full}` },
    { client: 'containerd', command: `ctr image pull ${at.tls ? '' : '--plain-http '}${full}` },
    { client: 'skopeo', command: `skopeo copy ${at.tls ? '' : '--src-tls-verify=false '}docker://${full} oci-archive:${base}.tar` },
  ];
  const up = image.upstream;
  if (up) {
    const upstreamName = up.name === 'docker.io' ? 'docker.io' : up.name.replace('_', ':');
    if (up.isDefault && up.name === 'docker.io') {
      const short = up.remoteRepo.startsWith('library/') ? up.remoteRepo.slice('library/'.length) : up.remoteRepo;
      out.push({ client: 'docker', command: `docker pull ${short}${image.ref}`, note: `through the mirror: "registry-mirrors": ["${at.tls ? 'https' : 'http'}://${at.host}"] in /etc/docker/daemon.json` });
    }
    out.push({
      client: 'containerd', command: `ctr image pull --hosts-dir /etc/containerd/certs.d ${upstreamName}/${up.remoteRepo}${image.ref}`,
      note: `through the mirror: /etc/containerd/certs.d/${upstreamName}/hosts.toml with [host."${at.tls ? 'https' : 'http'}://${at.host}"] capabilities = ["pull", "resolve"]`,
    });
  }
  return out;
}
