/**
 * Loads the configuration: YAML in registry:2's config.yml shape (plus stowage's own keys), then
 * registry:2-style REGISTRY_* environment overrides, decoded once against ConfigSchema into the
 * typed Config. Every problem is one ConfigError line naming the key (and the variable, when the
 * value came from one): "config: http.addr: expected ...", "config (REGISTRY_HTTP_ADDR): http.addr: ...".
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { Problem, decodeConfig, isMapping } from './decode.js';
import { applyEnv } from './env.js';
import { resolveConfig } from './resolve.js';
import { ConfigSchema, type Config, type ConfigFile } from './schema.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * What `stowage serve` runs with when no file is given: config/config.yml minus the keys that are
 * schema defaults (a test checks that the two load the same).
 */
export const DEFAULT_CONFIG_YAML = `
version: 0.1
storage:
  filesystem:
    rootdirectory: ./data
upstreams:
  - name: docker.io
    url: https://registry-1.docker.io
default_upstream: docker.io
`;

export interface LoadOptions { file?: string; env?: NodeJS.ProcessEnv; cwd?: string }

export interface LoadedConfig {
  config: Config;
  /** The decoded file after environment overrides and defaults, in config.yml's shape. */
  effective: ConfigFile;
  /** One line per key that is accepted but has no effect ("health: ignored (...)"). */
  warnings: string[];
}

export function loadConfig(options: LoadOptions = {}): Config {
  return loadConfigDetailed(options).config;
}

export function loadConfigDetailed(options: LoadOptions = {}): LoadedConfig {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? {};
  if (options.file === undefined) return parseConfigDetailed(DEFAULT_CONFIG_YAML, env, '(defaults)', cwd);
  let text: string;
  try {
    text = readFileSync(resolve(cwd, options.file), 'utf8');
  } catch (e) {
    throw new ConfigError(`config: cannot read ${options.file}: ${(e as Error).message}`);
  }
  return parseConfigDetailed(text, env, options.file, cwd);
}

export function parseConfig(yamlText: string, env: NodeJS.ProcessEnv, source: string, cwd: string): Config {
  return parseConfigDetailed(yamlText, env, source, cwd).config;
}

export function parseConfigDetailed(yamlText: string, env: NodeJS.ProcessEnv, source: string, cwd: string): LoadedConfig {
  const doc = parseDocument(yamlText, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    const where = pos ? ` line ${pos.line}, column ${pos.col}` : '';
    const what = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`config: ${source}${where}: ${what}`);
  }
  const raw: unknown = doc.toJS() ?? {};
  if (!isMapping(raw)) throw new ConfigError(`config: ${source}: expected a mapping at the top level`);
  let fromEnv = new Map<string, string>();
  try {
    fromEnv = applyEnv(ConfigSchema, raw, env, fromEnv);
    const { value, warnings } = decodeConfig(ConfigSchema, raw, { cwd });
    const effective = value as ConfigFile;
    const config = resolveConfig(effective);
    effective.metadata.path = config.metadata.path;
    return { config, effective, warnings };
  } catch (e) {
    if (e instanceof Problem) throw configError(e, fromEnv);
    throw e;
  }
}

/** The one line: the variable that set the key (or a key above it), the key, the problem. */
function configError(p: Problem, fromEnv: Map<string, string>): ConfigError {
  let variable: string | undefined;
  let longest = -1;
  for (const [key, name] of fromEnv) {
    const covers = p.key === key || p.key.startsWith(`${key}.`) || p.key.startsWith(`${key}[`);
    if (covers && key.length > longest) [variable, longest] = [name, key.length];
  }
  // Keys come from the file: escape control characters so the message stays one line.
  const key = p.key.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
  return new ConfigError(`config${variable ? ` (${variable})` : ''}: ${key}: ${p.problem}`);
}
