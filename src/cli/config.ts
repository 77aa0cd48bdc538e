/** stowage config reference | check [--config FILE]  (see config/command.ts) */
import { configCommand } from '../config/command.js';
import { configFileArg } from './common.js';

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  return configCommand(sub, configFileArg(rest), { env: process.env, stdout: process.stdout, stderr: process.stderr });
}
