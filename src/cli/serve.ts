/** stowage serve [--config FILE | FILE]: run the registry (registry:2 style: `serve CONFIG`). */
import { createLogger } from '../log.js';
import { startServer } from '../main.js';
import { readConfig, UsageError } from './common.js';

export function configFileArg(args: string[]): string | undefined {
  const i = args.indexOf('--config');
  if (i >= 0) {
    const file = args[i + 1];
    if (!file) throw new UsageError('--config needs a file');
    return file;
  }
  const eq = args.find((a) => a.startsWith('--config='));
  if (eq) return eq.slice('--config='.length);
  return args.find((a) => !a.startsWith('-'));
}

export async function run(args: string[]): Promise<number | undefined> {
  const config = readConfig(configFileArg(args));
  const log = createLogger(config.log);
  const server = await startServer(config, log).catch((err: unknown) => {
    log.fatal({ err }, 'start-up failed');
    throw new UsageError(err instanceof Error ? err.message : String(err));
  });
  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    server.close().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  return undefined; // keeps running
}
