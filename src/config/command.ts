/**
 * `stowage config reference`: prints the configuration reference table (markdown, as in README.md).
 * `stowage config check [--config FILE]`: loads FILE (or the embedded defaults) with the REGISTRY_*
 * environment, prints the effective configuration with secrets redacted; exit 1 and the one-line
 * error when it is wrong.
 */
import { ConfigError, loadConfigDetailed } from './load.js';
import { effectiveYaml, referenceTable } from './reference.js';

export interface CommandIO {
  env: NodeJS.ProcessEnv;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export const CONFIG_USAGE = `usage: stowage config reference
       stowage config check [--config FILE]`;

/** Runs a `stowage config` subcommand; returns the exit code. */
export function configCommand(sub: string | undefined, file: string | undefined, io: CommandIO): number {
  switch (sub) {
    case 'reference':
      io.stdout.write(referenceTable());
      return 0;
    case 'check':
      try {
        const loaded = loadConfigDetailed(file === undefined ? { env: io.env } : { file, env: io.env });
        for (const w of loaded.warnings) io.stderr.write(`stowage: warning: config: ${w}\n`);
        io.stdout.write(effectiveYaml(loaded.effective));
        return 0;
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        io.stderr.write(`stowage: ${e.message}\n`);
        return 1;
      }
    default:
      io.stderr.write(`${CONFIG_USAGE}\n`);
      return 2;
  }
}
