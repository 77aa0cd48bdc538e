/**
 * stowage reindex [--config FILE | FILE]: rebuild the metadata index (SQLite, or the PostgreSQL database
 * when database.enabled) from storage. Also how a single node moves onto PostgreSQL (README).
 */
import { createLogger } from '../log.js';
import { createServices } from '../main.js';
import { configFileArg, readConfig } from './common.js';

export async function run(args: string[]): Promise<number> {
  const config = readConfig(configFileArg(args));
  const log = createLogger(config.log);
  const services = await createServices(config, log);
  try {
    const result = await services.registry.reindex(config.upstreams.map((u) => u.name));
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await services.close();
  }
  return 0;
}
