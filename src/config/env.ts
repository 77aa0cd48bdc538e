/**
 * registry:2's environment overrides, for every key in ConfigSchema: REGISTRY_A_B_C sets a.b.c.
 * A variable naming a scalar key holds the value as text; one naming a mapping, a list or a key
 * of several shapes holds YAML (REGISTRY_UPSTREAMS='[{name: ghcr.io, url: "https://ghcr.io"}]').
 * As in registry:2, a list item is named by its index (REGISTRY_UPSTREAMS_0_TAG_TTL; the index
 * one past the end appends an item) and a mapping entry by its key, lower-cased
 * (REGISTRY_LOG_FIELDS_SERVICE). Variables naming no key are ignored, as registry:2 ignores them;
 * variables under a refused key (REGISTRY_AUTH_HTPASSWD_PATH) refuse it.
 */
import type { TSchema } from 'typebox';
import { parse as parseYaml } from 'yaml';
import { Problem, childKey, driverSection, isMapping, isSection, requiredKeys, schemaShape, type Mapping } from './decode.js';
import type { Schema } from './kinds.js';

export interface EnvKey {
  /** REGISTRY_STORAGE_DELETE_ENABLED; list items as REGISTRY_UPSTREAMS_<n>_TAG_TTL. */
  name: string;
  /** ['storage', 'delete', 'enabled']; list items as ['upstreams', '<n>', 'tag_ttl']. */
  path: string[];
  schema: Schema;
  /** The variable holds YAML (a mapping, list or several shapes), not plain text. */
  yaml: boolean;
  /** The key must be given (it has no default). */
  required: boolean;
}

const PREFIX = 'REGISTRY_';
const props = (s: Schema): Array<[string, Schema]> => Object.entries(s.properties as Record<string, Schema>);
const holdsYaml = (s: Schema): boolean => schemaShape(s) !== 'scalar' || Array.isArray(s.anyOf) || s['x-kind'] === 'ignored' || s['x-kind'] === 'refused';
const mappingOption = (s: Schema): Schema | undefined => (s.anyOf as Schema[] | undefined)?.find(isSection);

/** Every key a REGISTRY_* variable can set (the docs table and the tests walk this), parents first. */
export function envKeys(schema: TSchema): EnvKey[] {
  const out: EnvKey[] = [];
  const walk = (s: Schema, path: string[]): void => {
    for (const [k, prop] of props(s)) {
      const p = [...path, k];
      const required = requiredKeys(s).includes(k) && !('default' in prop) && !isSection(prop);
      out.push({ name: `${PREFIX}${p.join('_').toUpperCase()}`, path: p, schema: prop, yaml: holdsYaml(prop), required });
      if (isSection(prop)) walk(prop, p);
      const items = prop.items as Schema | undefined;
      if (prop.type === 'array' && items && isSection(items)) walk(items, [...p, '<n>']);
      const alt = mappingOption(prop);
      if (alt) walk(alt, p);
    }
  };
  walk(schema as Schema, []);
  return out;
}

type Segment = string | number;
interface Target { path: Segment[]; schema: Schema; /** The variable names something inside an ignored or refused key. */ below: boolean }

/** The key a variable name sets, or undefined when it names none. */
function target(root: Schema, tokens: string[]): Target | undefined {
  let s = root;
  const path: Segment[] = [];
  let i = 0;
  while (i < tokens.length) {
    const kind = s['x-kind'];
    if (kind === 'ignored' || kind === 'refused') return { path, schema: s, below: true };
    if (isSection(s)) {
      // Keys may hold underscores (default_upstream): the longest key matching the next tokens wins.
      let best: [string, number] | undefined;
      for (const [k] of props(s)) {
        const parts = k.toUpperCase().split('_');
        if (parts.every((p, j) => tokens[i + j] === p) && (!best || parts.length > best[1])) best = [k, parts.length];
      }
      if (!best) return undefined;
      path.push(best[0]);
      s = (s.properties as Record<string, Schema>)[best[0]]!;
      i += best[1];
    } else if (s.type === 'array') {
      if (!/^\d+$/.test(tokens[i]!)) return undefined;
      path.push(Number(tokens[i]));
      s = s.items as Schema;
      i += 1;
    } else if (isMapping(s.patternProperties)) {
      path.push(tokens[i]!.toLowerCase());
      s = Object.values(s.patternProperties as Record<string, Schema>)[0]!;
      i += 1;
    } else {
      const alt = mappingOption(s);
      if (!alt) return undefined;
      s = alt;
    }
  }
  return { path, schema: s, below: false };
}

export const keyOf = (path: Segment[]): string =>
  path.reduce<string>((key, seg) => (typeof seg === 'number' ? `${key}[${seg}]` : childKey(key, seg)), '');

/**
 * Applies the REGISTRY_* variables in `env` to the raw (YAML-parsed) configuration in place,
 * shorter names first. Records key -> variable name in `fromEnv` (also when it throws), so
 * errors can name the variable.
 */
export function applyEnv(schema: TSchema, raw: Mapping, env: NodeJS.ProcessEnv, fromEnv = new Map<string, string>()): Map<string, string> {
  const root = schema as Schema;
  const names = Object.keys(env).filter((n) => n.startsWith(PREFIX) && n.length > PREFIX.length);
  const split = (n: string) => n.slice(PREFIX.length).split('_');
  names.sort((a, b) => split(a).length - split(b).length || (a < b ? -1 : 1));
  for (const name of names) {
    const t = target(root, split(name));
    if (!t || t.path.length === 0) continue;
    const key = keyOf(t.path);
    if (!fromEnv.has(key)) fromEnv.set(key, name);
    if (t.below) {
      // Something inside an ignored key: make it present (for the warning); inside a refused one: refuse.
      if (at(raw, t.path) === undefined || t.schema['x-kind'] === 'refused') setAt(root, raw, t.path, {}, key, fromEnv.get(key)!, fromEnv);
      continue;
    }
    let value: unknown = env[name];
    if (holdsYaml(t.schema)) {
      try {
        value = parseYaml(env[name]!);
      } catch (e) {
        throw new Problem(key, `not valid YAML: ${((e as Error).message.split('\n')[0] ?? '').trim()}`);
      }
    }
    setAt(root, raw, t.path, value, key, name, fromEnv);
  }
  return fromEnv;
}

function at(raw: Mapping, path: Segment[]): unknown {
  let node: unknown = raw;
  for (const seg of path) node = isMapping(node) || Array.isArray(node) ? (node as Record<Segment, unknown>)[seg] : undefined;
  return node;
}

/** Sets path to value, making the mappings and list items on the way (recorded as the variable's). */
function setAt(root: Schema, raw: Mapping, path: Segment[], value: unknown, key: string, name: string, fromEnv: Map<string, string>): void {
  let node: Record<Segment, unknown> = raw;
  let s: Schema | undefined = root;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    const drivers = s?.['x-drivers'] as string[] | undefined;
    // Naming a driver's key selects that driver, as in registry:2; the other drivers go.
    if (drivers?.includes(seg as string)) for (const d of drivers) if (d !== seg) delete node[d];
    const prop: Schema | undefined = s === undefined ? undefined
      : isSection(s) ? (s.properties as Record<string, Schema>)[seg as string]
      : s.type === 'array' ? s.items as Schema
      : isMapping(s.patternProperties) ? Object.values(s.patternProperties as Record<string, Schema>)[0] : undefined;
    if (Array.isArray(node) && typeof seg === 'number' && seg > node.length) {
      throw new Problem(key, `${keyOf(path.slice(0, i))} has ${node.length} items: number them from 0 without gaps`);
    }
    if (last) {
      if (prop?.['x-drivers'] && typeof value === 'string') {
        // REGISTRY_STORAGE=inmemory picks the driver and keeps the rest of storage.
        const picked = driverSection(prop, value, key);
        const current = isMapping(node[seg]) ? (node[seg] as Mapping) : {};
        for (const d of prop['x-drivers'] as string[]) if (d !== value) delete current[d];
        node[seg] = { ...picked, ...current, [value]: isMapping(current[value]) ? current[value] : {} };
      } else {
        node[seg] = value;
      }
      return;
    }
    let next = node[seg];
    if (typeof next === 'string' && prop?.['x-drivers']) next = driverSection(prop, next, keyOf(path.slice(0, i + 1)));
    const wantList = typeof path[i + 1] === 'number';
    if (wantList ? !Array.isArray(next) : !isMapping(next)) {
      next = wantList ? [] : {};
      const made = keyOf(path.slice(0, i + 1));
      if (!fromEnv.has(made)) fromEnv.set(made, name);
    }
    node[seg] = next;
    node = next as Record<Segment, unknown>;
    s = prop && !isSection(prop) && prop.type !== 'array' && !isMapping(prop.patternProperties) ? mappingOption(prop) : prop;
  }
}
