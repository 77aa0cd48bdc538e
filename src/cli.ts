#!/usr/bin/env node
/**
 * The `stowage` command.
 *   stowage serve [--config FILE | FILE]     run the registry (registry:2 style: `serve CONFIG`)
 *   stowage reindex [--config FILE | FILE]   rebuild the metadata index from storage
 *   stowage healthcheck [--config FILE | FILE]  probe the running registry (exit 0 if healthy)
 *   stowage config reference | check [--config FILE]   (src/config/command.ts)
 *   stowage version
 */
import { readFileSync } from 'node:fs';
import { configCommand } from './config/command.js';
import { ConfigError, loadConfigDetailed, type LoadedConfig } from './config/load.js';
import { createLogger } from './log.js';
import { createServices, startServer } from './main.js';

const USAGE = `usage: stowage <command> [--config FILE]

commands:
  serve     run the registry (default config: embedded defaults; npm start uses config/config.yml)
  reindex   rebuild the SQLite metadata index from storage
  healthcheck  exit 0 if the registry this config describes answers healthy (container HEALTHCHECK)
  config    config reference: print the configuration reference (markdown)
            config check [--config FILE]: validate, print the effective config (secrets redacted)
  version   print the version`;

/**
 * The config file: the last `--config FILE` / `--config=FILE` wins (so `npm start -- --config X`
 * overrides the one npm start names), else a bare argument (registry:2's `serve FILE`).
 */
export function configFile(args: readonly string[]): string | undefined {
  let file: string | undefined;
  let bare: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--config') {
      const next = args[++i];
      if (next === undefined) fail('--config needs a file');
      file = next;
    } else if (a.startsWith('--config=')) {
      file = a.slice('--config='.length);
    } else if (!a.startsWith('-')) {
      bare ??= a;
    }
  }
  return file ?? bare;
}

function fail(message: string): never {
  process.stderr.write(`stowage: ${message}\n`);
  process.exit(1);
}

function readConfig(args: string[]): LoadedConfig {
  try {
    const file = configFile(args);
    return loadConfigDetailed(file === undefined ? { env: process.env } : { file, env: process.env });
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message);
    throw e;
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  switch (command) {
    case 'serve': {
      const { config, warnings } = readConfig(args);
      const log = createLogger(config.log);
      for (const w of warnings) log.warn(`config: ${w}`);
      const server = await startServer(config, log).catch((err: unknown) => {
        log.fatal({ err }, 'start-up failed');
        fail(err instanceof Error ? err.message : String(err));
      });
      // The first SIGTERM/SIGINT drains (http.draintimeout); a second one exits at once.
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopping) {
          log.warn({ signal }, 'second signal: exiting without draining');
          process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
        }
        stopping = true;
        log.info({ signal }, 'shutting down');
        server.close().then(() => process.exit(0), (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      return;
    }
    case 'reindex': {
      const { config } = readConfig(args);
      const log = createLogger(config.log);
      const services = createServices(config, log);
      const result = await services.registry.reindex(config.upstreams.map((u) => u.name));
      await services.close();
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    case 'healthcheck': {
      const { probeHealth } = await import('./health/probe.js');
      const result = await probeHealth(readConfig(args).config);
      process.stdout.write(`${result.ok ? 'healthy' : 'unhealthy'}: ${result.detail}\n`);
      process.exit(result.ok ? 0 : 1);
    }
    case 'config': {
      const [sub, ...rest] = args;
      process.exitCode = configCommand(sub, configFile(rest), { env: process.env, stdout: process.stdout, stderr: process.stderr });
      return;
    }
    case 'version':
    case '--version': {
      const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
      process.stdout.write(`stowage ${pkg.version}\n`);
      return;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      fail(`unknown command "${command}"\n${USAGE}`);
  }
}

await main(process.argv.slice(2));
