/** stowage serve [--config FILE | FILE]: run the registry (registry:2 style: `serve CONFIG`). */
import { createLogger, flushLog } from '../log.js';
import { startServer } from '../main.js';
import { StoreCheckError } from '../storage/driver.js';
import { configFileArg, readConfigDetailed, UsageError } from './common.js';

export async function run(args: string[]): Promise<number | undefined> {
  const { config, warnings } = readConfigDetailed(configFileArg(args));
  const log = createLogger(config.log);
  for (const w of warnings) log.warn(`config: ${w}`);
  const server = await startServer(config, log).catch((err: unknown) => {
    // The store's own error, on one line: a stack trace would only hide it.
    if (err instanceof StoreCheckError) throw err;
    log.fatal({ err }, 'start-up failed');
    flushLog(log);
    throw new UsageError(err instanceof Error ? err.message : String(err));
  });
  // The log buffers lines (log.ts): write out the last ones before exiting.
  const exit = (code: number) => {
    flushLog(log);
    process.exit(code);
  };
  // The first SIGTERM/SIGINT drains (http.draintimeout); a second one exits at once.
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without draining');
      exit(128 + (signal === 'SIGINT' ? 2 : 15));
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    server.close().then(() => exit(0), (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return undefined; // keeps running
}
