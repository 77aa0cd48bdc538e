#!/usr/bin/env node
/**
 * The `stowage` command: one file per command under cli/, loaded when that command runs.
 *   stowage serve [--config FILE | FILE]     run the registry (registry:2 style: `serve CONFIG`)
 *   stowage reindex [--config FILE | FILE]   rebuild the metadata index from storage
 *   stowage prefetch | export | import | gc | status | verify --config FILE ...   see `stowage <command> --help`
 *   stowage healthcheck [--config FILE | FILE]  probe the running registry (exit 0 if healthy)
 *   stowage config reference | check [--config FILE]   (src/config/command.ts)
 *   stowage db migrate | status --config FILE   the PostgreSQL metadata database's schema
 *   stowage version
 */
import { UsageError } from './cli/common.js';
import { StoreCheckError } from './storage/driver.js';

const USAGE = `usage: stowage <command> [--config FILE] ...

commands:
  serve      run the registry (default config: embedded defaults; npm start uses config/config.yml)
  reindex    rebuild the metadata index (SQLite or PostgreSQL) from storage
  prefetch   pull images through the cache before the network is cut
  export     write images to an OCI image layout bundle (directory or .tar) for the air gap
  import     load a bundle (ours, or any OCI image layout) into storage
  gc         remove blobs no manifest references (and untagged pushed manifests), while serving
  status     storage usage per upstream, the cache budget, largest and least recently used images
  verify     which signature rule applies to held images, and which keys signed them
  healthcheck  exit 0 if the registry this config describes answers healthy (container HEALTHCHECK)
  db         db status | db migrate: the PostgreSQL metadata database's schema migrations
  config     config reference: print the configuration reference (markdown)
             config check [--config FILE]: validate, print the effective config (secrets redacted)
  version    print the version

Run 'stowage <command> --help' for a command's options.`;

type Command = (args: string[]) => Promise<number | undefined>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./cli/serve.js')).run,
  reindex: async () => (await import('./cli/reindex.js')).run,
  prefetch: async () => (await import('./cli/prefetch.js')).run,
  export: async () => (await import('./cli/export.js')).run,
  import: async () => (await import('./cli/import.js')).run,
  gc: async () => (await import('./cli/gc.js')).run,
  status: async () => (await import('./cli/status.js')).run,
  verify: async () => (await import('./cli/verify.js')).run,
  healthcheck: async () => (await import('./cli/healthcheck.js')).run,
  config: async () => (await import('./cli/config.js')).run,
  db: async () => (await import('./cli/db.js')).run,
  version: async () => (await import('./cli/version.js')).run,
  '--version': async () => (await import('./cli/version.js')).run,
};

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const load = COMMANDS[command];
  if (!load) {
    process.stderr.write(`stowage: unknown command "${command}"\n${USAGE}\n`);
    process.exit(1);
  }
  try {
    const code = await (await load())(args);
    if (code !== undefined) process.exitCode = code;
  } catch (e) {
    // serve and reindex keep registry:2-era behaviour: "stowage: <problem>", exit 1.
    const legacy = command === 'serve' || command === 'reindex';
    if (e instanceof UsageError || e instanceof StoreCheckError) {
      process.stderr.write(`stowage${legacy ? '' : ` ${command}`}: ${e.message}\n`);
      // A store that cannot be used is not a usage mistake: exit 1 for every command.
      process.exit(legacy || e instanceof StoreCheckError ? 1 : 2);
    }
    throw e;
  }
}

await main(process.argv.slice(2));
