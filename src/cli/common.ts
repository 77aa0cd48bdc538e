/**
 * What every command shares: reading the config, one way of opening the configured storage and
 * metadata (main.ts createServices, indexed if the index is new), a logger that keeps stdout for
 * the command's own output, and argument parsing that turns mistakes into one usage line.
 *
 * Light on purpose: every command imports this file, and `stowage healthcheck` runs every 30 s in
 * the container. main.ts (the server, its storage drivers and libraries) is loaded only by a
 * command that opens the services.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino, type Logger } from 'pino';
import { ConfigError, loadConfigDetailed, type LoadedConfig } from '../config/load.js';
import type { Config, LogLevel } from '../config/schema.js';
import { createLogger } from '../log.js';
import type { Services } from '../main.js';

/** A mistake on the command line or in the config: printed as one line, exit code 2. */
export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs, strict, with `--config FILE` and `--json` known to every tool command. */
export function parse<O extends Options>(args: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args, options: { config: { type: 'string' }, ...options }, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * The config file: the last `--config FILE` / `--config=FILE` wins (so `npm start -- --config X`
 * overrides the one npm start names), else a bare argument (registry:2's `serve FILE`).
 */
export function configFileArg(args: readonly string[]): string | undefined {
  let file: string | undefined;
  let bare: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--config') {
      const next = args[++i];
      if (next === undefined) throw new UsageError('--config needs a file');
      file = next;
    } else if (a.startsWith('--config=')) {
      file = a.slice('--config='.length);
    } else if (!a.startsWith('-')) {
      bare ??= a;
    }
  }
  return file ?? bare;
}

/** The config with the warnings about keys that have no effect (serve logs them). */
export function readConfigDetailed(file: string | undefined): LoadedConfig {
  try {
    return loadConfigDetailed(file === undefined ? { env: process.env } : { file, env: process.env });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

export function readConfig(file: string | undefined): Config {
  return readConfigDetailed(file).config;
}

/** Tools log to stderr (stdout carries their results), warnings and worse unless asked. */
export function toolLogger(config: Config, level: LogLevel = 'warn'): Logger {
  return createLogger({ ...config.log, level }, pino.destination(2));
}

/**
 * Opens the configured storage and metadata as the server does. Safe beside a running server on
 * the same config: SQLite (WAL) takes several processes, and storage writes are atomic.
 */
export async function openServices(config: Config, log: Logger): Promise<Services> {
  const { createServices } = await import('../main.js');
  const services = await createServices(config, log);
  try {
    await services.registry.ensureIndexed(config.upstreams.map((u) => u.name));
  } catch (e) {
    await services.close();
    throw e;
  }
  return services;
}

/** "1.5GiB", "700M", "4096" -> bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what}: not a size: ${JSON.stringify(text)} (e.g. 4GiB, 700M)`);
  const power = ' kmgt'.indexOf(m[2]!.toLowerCase() || ' ');
  const base = m[3] || !m[2] ? 1024 : 1000;
  const bytes = Math.floor(Number(m[1]) * base ** power);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`${what}: out of range: ${text}`);
  return bytes;
}

const DURATION_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "7d", "36h", "2w", "90m" -> the time that long ago; or an ISO date / date-time. */
export function parseSince(text: string, now = Date.now()): number {
  const m = /^(\d+)([smhdw])$/.exec(text.trim());
  if (m) return now - Number(m[1]) * DURATION_MS[m[2]!]!;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new UsageError(`--since: expected a date (2026-11-01, 2026-11-01T12:00Z) or a duration (7d, 36h), got ${JSON.stringify(text)}`);
  return t;
}
