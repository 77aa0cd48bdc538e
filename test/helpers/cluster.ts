/**
 * A stowage cluster for integration tests: N replicas (dist/cli.js processes, each its own port)
 * on one PostgreSQL database and one storage (a shared directory, or an object-store bucket), and
 * nginx as a plain round-robin load balancer in front of them.
 */
import { randomBytes } from 'node:crypto';
import { startNginx, type Nginx } from './nginx.js';
import type { PostgresCluster } from './postgres.js';
import { startStowage, type Proc } from './procs.js';
import { scratchDir } from './scratch.js';
import { freePort } from './tools.js';

export interface ClusterOptions {
  pg: PostgresCluster;
  replicas?: number;
  /** A storage driver section ({ s3: {...} }); default: one shared directory. */
  storage?: Record<string, unknown>;
  /** More config for every replica (upstreams, cache, notifications, ...). */
  config?: Record<string, unknown>;
}

export interface Cluster {
  replicas: Proc[];
  lb: Nginx;
  /** The load balancer's URL. */
  url: string;
  /** host:port of the load balancer, for skopeo. */
  host: string;
  /** The database URL the replicas share. */
  dbUrl: string;
  /** Where the shared directory is (filesystem storage). */
  rootDir: string;
  /** Starts replica i again (after a kill9 or stop), same port and config. */
  restart(i: number): Promise<Proc>;
  stop(): Promise<void>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const n = o.replicas ?? 3;
  const db = `c_${randomBytes(5).toString('hex')}`;
  const dbUrl = await o.pg.createDatabase(db);
  const rootDir = await scratchDir('stowage-cluster-');
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
  const optionsFor = (port: number) => ({
    port,
    rootDir,
    ...(o.storage ? { storage: o.storage } : {}),
    config: {
      database: { enabled: true, dsn: dbUrl, sslmode: 'disable' },
      cluster: { advertise_url: `http://127.0.0.1:${port}` },
      health: { database: { interval: '500ms', timeout: '1s' } },
      ...o.config,
    },
  });
  // The first alone (it migrates and indexes the new database), then the others together.
  const first = await startStowage(optionsFor(ports[0]!));
  const rest = await Promise.all(ports.slice(1).map((p) => startStowage(optionsFor(p))));
  const replicas = [first, ...rest];
  const lb = await startNginx({ backends: ports });
  return {
    replicas, lb, url: lb.url, host: `127.0.0.1:${lb.port}`, dbUrl, rootDir,
    async restart(i) {
      const p = await startStowage(optionsFor(ports[i]!));
      replicas[i] = p;
      return p;
    },
    async stop() {
      await lb.stop();
      await Promise.all(replicas.map((r) => r.stop()));
    },
  };
}
