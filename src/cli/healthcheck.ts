/** stowage healthcheck [--config FILE | FILE]: probe the running registry (exit 0 if healthy; container HEALTHCHECK). */
import { configFileArg, readConfig } from './common.js';

export async function run(args: string[]): Promise<number> {
  const { probeHealth } = await import('../health/probe.js');
  const result = await probeHealth(readConfig(configFileArg(args)));
  process.stdout.write(`${result.ok ? 'healthy' : 'unhealthy'}: ${result.detail}\n`);
  return result.ok ? 0 : 1;
}
