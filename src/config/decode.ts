/**
 * Walks ConfigSchema over the raw YAML value: refuses unknown keys, fills defaults, decodes each
 * leaf with its kind (kinds.ts). Every problem is a Problem naming the key path
 * ("upstreams[0].tag_ttl"); load.ts turns it into the one-line ConfigError.
 */
import type { TSchema } from 'typebox';
import { KINDS, Mismatch, alternatives, mismatch, type DecodeContext, type Schema } from './kinds.js';

/** A problem at one key; `key` is the path as users write it: "storage.delete.enabled", "upstreams[1].name". */
export class Problem extends Error {
  constructor(readonly key: string, readonly problem: string) {
    super(`${key}: ${problem}`);
    this.name = 'Problem';
  }
}

export type Mapping = Record<string, unknown>;
export const isMapping = (v: unknown): v is Mapping => typeof v === 'object' && v !== null && !Array.isArray(v);

export const childKey = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

export interface DecodeResult { value: unknown; warnings: string[] }

type Shape = 'mapping' | 'list' | 'scalar';
export const schemaShape = (s: Schema): Shape => (s.type === 'object' ? 'mapping' : s.type === 'array' ? 'list' : 'scalar');
const valueShape = (v: unknown): Shape => (isMapping(v) ? 'mapping' : Array.isArray(v) ? 'list' : 'scalar');

export const isSection = (s: Schema): boolean => s.type === 'object' && isMapping(s.properties);
export const requiredKeys = (s: Schema): string[] => (Array.isArray(s.required) ? (s.required as string[]) : []);

/** A bare driver name ("storage: inmemory", REGISTRY_STORAGE=inmemory) as a section selecting it. */
export function driverSection(schema: Schema, name: unknown, key: string): Mapping {
  const drivers = schema['x-drivers'] as string[];
  if (typeof name !== 'string' || !drivers.includes(name)) {
    throw new Problem(key, mismatch(`expected ${alternatives(drivers)} (the storage drivers stowage has)`, name).message);
  }
  return { [name]: {} };
}

export function decodeConfig(schema: TSchema, raw: unknown, ctx: DecodeContext): DecodeResult {
  const warnings: string[] = [];
  const node = (s: Schema, value: unknown, key: string): unknown => {
    const kind = s['x-kind'] as string | undefined;
    if (kind === 'ignored') {
      warnings.push(`${key}: ignored (${String(s.description)})`);
      return value;
    }
    if (kind === 'refused') throw new Problem(key, s['x-message'] as string);
    if (kind !== undefined) {
      try {
        return KINDS[kind]!.decode(value, s, ctx);
      } catch (e) {
        if (e instanceof Mismatch) throw new Problem(key, e.message);
        throw e;
      }
    }
    if (Array.isArray(s.anyOf)) return either(s, value, key);
    if (s.type === 'array') return list(s, value, key);
    if (isMapping(s.patternProperties)) return map(s, value, key);
    if (isSection(s)) return sectionOf(s, value, key);
    throw new Error(`config schema: no decoder for ${key}`);
  };

  const either = (s: Schema, value: unknown, key: string): unknown => {
    const options = (s.anyOf as Schema[]).filter((o) => schemaShape(o) === valueShape(value));
    for (const o of options) {
      // A mapping or list descends (its errors name the inner key); scalars report the union's expectation.
      if (valueShape(value) !== 'scalar') return node(o, value, key);
      try {
        return node(o, value, key);
      } catch (e) {
        if (!(e instanceof Problem)) throw e;
      }
    }
    throw new Problem(key, mismatch(s['x-expected'] as string, value).message);
  };

  const list = (s: Schema, value: unknown, key: string): unknown[] => {
    if (value === null || value === undefined) return [];
    const items = Array.isArray(value) ? value : s['x-single'] && !isMapping(value) ? [value] : undefined;
    if (!items) throw new Problem(key, mismatch('expected a list', value).message);
    return items.map((v, i) => node(s.items as Schema, v, `${key}[${i}]`));
  };

  const map = (s: Schema, value: unknown, key: string): Mapping => {
    if (value === null || value === undefined) return {};
    if (!isMapping(value)) throw new Problem(key, mismatch((s['x-expected'] as string | undefined) ?? 'expected a mapping', value).message);
    const [pattern, valueSchema] = Object.entries(s.patternProperties as Record<string, Schema>)[0]!;
    const keyRe = new RegExp(pattern);
    const out: Mapping = {};
    for (const [k, v] of Object.entries(value)) {
      if (!keyRe.test(k)) throw new Problem(childKey(key, k), (s['x-key-expected'] as string | undefined) ?? 'unexpected key');
      out[k] = node(valueSchema, v, childKey(key, k));
    }
    return out;
  };

  const sectionOf = (s: Schema, value: unknown, key: string): Mapping => {
    const props = s.properties as Record<string, Schema>;
    if (value === null || value === undefined) value = {};
    if (typeof value === 'string' && s['x-drivers']) value = driverSection(s, value, key);
    if (!isMapping(value)) throw new Problem(key, mismatch('expected a mapping', value).message);
    for (const k of Object.keys(value)) if (!(k in props)) throw new Problem(childKey(key, k), 'unknown key');
    const required = requiredKeys(s);
    const out: Mapping = {};
    for (const [k, prop] of Object.entries(props)) {
      const v = value[k];
      // null is "left out" for a value, but "present" for a section (`inmemory:` selects the driver).
      if (v === undefined || (v === null && !isSection(prop))) {
        if ('default' in prop) out[k] = node(prop, structuredClone(prop.default), childKey(key, k));
        else if (required.includes(k)) {
          if (!isSection(prop)) throw new Problem(childKey(key, k), 'required');
          out[k] = node(prop, {}, childKey(key, k));
        }
        continue;
      }
      out[k] = node(prop, v, childKey(key, k));
    }
    const drivers = s['x-drivers'] as string[] | undefined;
    if (drivers) {
      const chosen = drivers.filter((d) => out[d] !== undefined);
      if (chosen.length > 1) throw new Problem(key, `exactly one storage driver may be configured, got ${chosen.join(' and ')}`);
      if (chosen.length === 0) {
        const fallback = s['x-default-driver'] as string;
        out[fallback] = node(props[fallback]!, {}, childKey(key, fallback));
      }
    }
    return out;
  };

  return { value: node(schema as Schema, raw, ''), warnings };
}
