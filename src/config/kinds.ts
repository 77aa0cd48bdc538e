/**
 * The field kinds the configuration schema is built from. Each helper returns plain JSON-Schema
 * data that decode.ts, env.ts and reference.ts walk, typed as TypeBox's schema types so that
 * Static<> gives the decoded configuration's type. For leaves, `x-kind` names the decoder in KINDS
 * and Static<> is the DECODED value: durations in ms, sizes in bytes, percentages as a fraction
 * 0..1, paths absolute. `default` is written as a user would write it in config.yml ("5m",
 * "200GiB") and goes through the same decoder.
 *
 * TypeBox is used for its types only: the objects are built here (the same JSON Schema its
 * builders make). Loading TypeBox's builders at run time cost every process ~19 MiB of RSS and
 * ~0.3 s of start-up (its 300 modules), for seven constructors.
 */
import { isAbsolute, resolve } from 'node:path';
import type { TObject, TProperties, TSchema, TUnsafe, TArray, TRecord, TUnion, TOptional } from 'typebox';
import { DurationError, formatGoDuration, parseGoDuration } from './duration.js';

export interface FieldOptions {
  /** One line for the README's reference table. */
  description: string;
  /** As written in config.yml; without one the key may be left out (or is required: see `required`). */
  default?: unknown;
  /** Redacted in `stowage config check` output, the reference table and logs. */
  secret?: boolean;
  /** A value for examples and the env-override test when the kind's own would not do. */
  example?: string;
}

/** Everything a decoder may need besides the value. */
export interface DecodeContext { cwd: string }

/** A decoder's complaint: the problem text, without the key (the walker adds it). */
export class Mismatch extends Error {}

/** How a value is shown in an error: JSON, one line, short. */
export function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** An http:// or https:// URL, or the one-line mismatch. */
function httpUrl(raw: unknown): URL {
  let u: URL | undefined;
  try {
    u = typeof raw === 'string' ? new URL(raw) : undefined;
  } catch {
    // reported below
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw mismatch('expected an http:// or https:// URL', raw);
  return u;
}

export function mismatch(expected: string, value: unknown): Mismatch {
  return new Mismatch(`${expected}, got ${show(value)}`);
}

/** "a", "a or b", "a, b or c", "one of a, b, c, d". */
export function alternatives(values: readonly string[]): string {
  if (values.length <= 1) return values.join('');
  if (values.length <= 3) return `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`;
  return `one of ${values.join(', ')}`;
}

export type Schema = TSchema & Record<string, unknown>;

interface Kind {
  /** File text (or YAML scalar) -> decoded value; throws Mismatch. */
  decode(raw: unknown, schema: Schema, ctx: DecodeContext): unknown;
  /** Decoded value -> what a user would write (for `config check`). */
  encode?(value: unknown, schema: Schema): unknown;
  /** The type column of the reference table. */
  docType(schema: Schema): string;
  /** A valid value as an env variable would hold it. */
  example(schema: Schema): string;
}

const expectedOr = (schema: Schema, fallback: string): string => (schema['x-expected'] as string | undefined) ?? fallback;

const scalarText = (raw: unknown): string | undefined =>
  typeof raw === 'string' ? raw : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined;

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?$/i;

export const KINDS: Readonly<Record<string, Kind>> = {
  string: {
    decode(raw, schema) {
      const s = scalarText(raw);
      if (s === undefined || (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(s))) {
        throw mismatch(expectedOr(schema, 'expected a string'), s ?? raw);
      }
      return s;
    },
    docType: () => 'string',
    example: (schema) => (schema.secret ? 's3cret' : 'example'),
  },
  boolean: {
    decode(raw) {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'false') return raw === 'true';
      throw mismatch('expected a boolean', raw);
    },
    docType: () => 'boolean',
    example: (schema) => String(schema.default !== true),
  },
  integer: {
    decode(raw, schema) {
      const min = schema.minimum as number;
      const max = schema.maximum as number;
      const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw mismatch(`expected a whole number from ${min} to ${max}`, raw);
      return n;
    },
    docType: (schema) => `integer ${String(schema.minimum)}–${String(schema.maximum)}`,
    example: (schema) => String(schema.maximum),
  },
  duration: {
    decode(raw) {
      if (raw === 0) return 0;
      if (typeof raw === 'string') {
        try {
          return parseGoDuration(raw);
        } catch (e) {
          if (!(e instanceof DurationError)) throw e;
        }
      }
      throw mismatch('expected a duration such as "30s", "5m" or "168h"', raw);
    },
    encode: (ms) => formatGoDuration(ms as number),
    docType: () => 'duration',
    example: () => '1h30m',
  },
  size: {
    decode(raw) {
      const m = typeof raw === 'number' ? [String(raw), String(raw), ''] : typeof raw === 'string' ? SIZE_RE.exec(raw.trim()) : null;
      const bytes = m ? Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]! : NaN;
      if (!Number.isSafeInteger(bytes) || bytes < 0) throw mismatch('expected a size such as "512MiB", "200GiB" or a number of bytes', raw);
      return bytes;
    },
    encode(value) {
      const bytes = value as number;
      for (const unit of ['TiB', 'GiB', 'MiB', 'KiB']) {
        const size = SIZE_UNITS[unit.toLowerCase()]!;
        if (bytes > 0 && bytes % size === 0) return `${bytes / size}${unit}`;
      }
      return bytes;
    },
    docType: () => 'size',
    example: () => '3GiB',
  },
  percent: {
    decode(raw) {
      const m = typeof raw === 'string' ? /^(\d+(?:\.\d+)?)\s*%$/.exec(raw.trim()) : null;
      const pct = m ? Number(m[1]) : NaN;
      if (!(pct >= 0 && pct <= 100)) throw mismatch('expected a percentage from 0% to 100% such as "90%"', raw);
      return pct / 100;
    },
    encode: (fraction) => `${Math.round((fraction as number) * 1e9) / 1e7}%`,
    docType: () => 'percentage',
    example: () => '42%',
  },
  path: {
    decode(raw, schema, ctx) {
      const s = scalarText(raw);
      if (s === undefined || s === '') throw mismatch('expected a file or directory path', raw);
      if ((schema['x-literals'] as string[] | undefined)?.includes(s)) return s;
      return isAbsolute(s) ? s : resolve(ctx.cwd, s);
    },
    docType: () => 'path',
    example: () => '/example/path',
  },
  url: {
    decode(raw) {
      const u = httpUrl(raw);
      if (u.pathname !== '/' || u.search || u.hash || u.username || u.password) throw mismatch('expected a URL without path, query or credentials', raw);
      return `${u.protocol}//${u.host}`;
    },
    docType: () => 'URL',
    example: () => 'https://example.com:8443',
  },
  href: {
    decode(raw) {
      return httpUrl(raw).toString();
    },
    docType: () => 'URL',
    example: () => 'https://example.com/hooks/registry',
  },
  addr: {
    decode(raw) {
      const s = scalarText(raw);
      const m = s === undefined ? null : /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(s);
      const port = m ? Number(m[3]) : NaN;
      if (!m || port > 65535) throw mismatch('expected "host:port" or ":port"', s ?? raw);
      return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!), port };
    },
    encode(value) {
      const { host, port } = value as { host: string; port: number };
      return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    },
    docType: () => 'host:port',
    example: () => '127.0.0.1:5999',
  },
  enum: {
    decode(raw, schema) {
      const values = schema.enum as string[];
      const aliases = (schema['x-aliases'] ?? {}) as Record<string, string>;
      const s = scalarText(raw)?.toLowerCase();
      const found = s === undefined ? undefined : values.find((v) => v.toLowerCase() === s) ?? aliases[s];
      if (found === undefined) throw mismatch(expectedOr(schema, `expected ${alternatives(values)}`), scalarText(raw) ?? raw);
      return found;
    },
    docType: (schema) => (schema.enum as string[]).map((v) => `\`${v === '' ? '""' : v}\``).join(', '),
    example: (schema) => (schema.enum as string[]).filter((v) => v !== schema.default).at(-1) ?? String(schema.default),
  },
};

function leaf<T>(kind: string, opts: FieldOptions, json: Record<string, unknown> = {}): TUnsafe<T> {
  const { description, secret, example, ...rest } = opts;
  return {
    'x-kind': kind, ...json, description, ...rest,
    ...(secret ? { secret: true } : {}), ...(example !== undefined ? { examples: [example] } : {}),
  } as unknown as TUnsafe<T>;
}

/** Marks a property that may be left out; section() leaves it out of `required`. */
const OPTIONAL = Symbol('optional');
const isOptional = (s: TSchema): boolean => OPTIONAL in s;

/** The key may be left out of its section. */
export const optional = <T extends TSchema>(schema: T): TOptional<T> => ({ ...schema, [OPTIONAL]: true }) as unknown as TOptional<T>;

export interface StringOptions extends FieldOptions {
  /** A regular expression the value must match. */
  pattern?: string;
  /** The error's "expected ..." text when the value does not match. */
  expected?: string;
}

export const str = (opts: StringOptions) => {
  const { pattern, expected, ...rest } = opts;
  return leaf<string>('string', rest, { type: 'string', ...(pattern ? { pattern } : {}), ...(expected ? { 'x-expected': expected } : {}) });
};
/** A string that is redacted wherever the configuration is shown. */
export const secret = (opts: FieldOptions) => leaf<string>('string', { ...opts, secret: true }, { type: 'string' });
export const bool = (opts: FieldOptions) => leaf<boolean>('boolean', opts, { type: 'boolean' });
export const int = (opts: FieldOptions & { min: number; max: number }) => {
  const { min, max, ...rest } = opts;
  return leaf<number>('integer', rest, { type: 'integer', minimum: min, maximum: max });
};
/** A Go duration ("30s", "5m", "168h"); decoded to milliseconds. */
export const duration = (opts: FieldOptions) => leaf<number>('duration', opts, { type: 'string' });
/** "512MiB", "200GiB", "10GB" or a number of bytes; decoded to bytes. */
export const size = (opts: FieldOptions) => leaf<number>('size', opts, { type: 'string' });
/** "90%"; decoded to a fraction 0..1. */
export const percent = (opts: FieldOptions) => leaf<number>('percent', opts, { type: 'string' });
/** A file or directory; decoded to an absolute path (relative ones against the working directory). */
export const path = (opts: FieldOptions & { literals?: string[] }) => {
  const { literals, ...rest } = opts;
  return leaf<string>('path', rest, { type: 'string', ...(literals ? { 'x-literals': literals } : {}) });
};
/** An http(s) origin; decoded to "scheme://host[:port]". */
export const url = (opts: FieldOptions) => leaf<string>('url', opts, { type: 'string', format: 'uri' });
/** A full http(s) URL, path and query allowed (webhooks, health check URIs). */
export const href = (opts: FieldOptions) => leaf<string>('href', opts, { type: 'string', format: 'uri' });
/** "host:port" or ":port"; decoded to {host, port} (":port" listens on every interface). */
export const addr = (opts: FieldOptions) => leaf<{ host: string; port: number }>('addr', opts, { type: 'string' });
/** One of fixed values, case-insensitively; `aliases` maps other spellings onto them. */
export const oneOf = <const V extends readonly string[]>(values: V, opts: FieldOptions & { aliases?: Record<string, V[number]>; expected?: string }) => {
  const { aliases, expected, ...rest } = opts;
  return leaf<V[number]>('enum', rest, { type: 'string', enum: [...values], ...(aliases ? { 'x-aliases': aliases } : {}), ...(expected ? { 'x-expected': expected } : {}) });
};

/** A mapping of keys to fields. Unknown keys are refused with "unknown key". */
export const section = <P extends TProperties>(properties: P, opts: Omit<FieldOptions, 'default'> & { drivers?: string[]; defaultDriver?: string } = { description: '' }): TObject<P> => {
  const { drivers, defaultDriver, ...rest } = opts;
  const required = Object.keys(properties).filter((k) => !isOptional(properties[k]!));
  return {
    type: 'object', ...(required.length > 0 ? { required } : {}), properties,
    additionalProperties: false, ...rest,
    ...(drivers ? { 'x-drivers': drivers, 'x-default-driver': defaultDriver ?? drivers[0] } : {}),
  } as unknown as TObject<P>;
};
/** A list. `single: true` takes a lone value as a list of one (as registry:2 does for http.headers). */
export const list = <T extends TSchema>(item: T, opts: FieldOptions & { single?: boolean }): TArray<T> => {
  const { single, ...rest } = opts;
  return { type: 'array', items: item, ...rest, ...(single ? { 'x-single': true } : {}) } as unknown as TArray<T>;
};
/** A mapping of free-form keys (matching `keyPattern`) to values of one schema. */
export const map = <T extends TSchema>(value: T, opts: FieldOptions & { keyPattern?: string; keyExpected?: string; expected?: string }): TRecord<string, T> => {
  const { keyPattern, keyExpected, expected, ...rest } = opts;
  return {
    type: 'object', patternProperties: { [keyPattern ?? '^.*$']: value },
    ...rest, ...(keyExpected ? { 'x-key-expected': keyExpected } : {}), ...(expected ? { 'x-expected': expected } : {}),
  } as unknown as TRecord<string, T>;
};
/** One of a few shapes: at most one scalar kind, one mapping and one list; picked by the value's shape. */
export const either = <T extends TSchema[]>(types: [...T], opts: FieldOptions & { expected: string }) => {
  const { expected, ...rest } = opts;
  return { anyOf: types, ...rest, 'x-expected': expected } as unknown as TUnion<T>;
};
/** A registry:2 key stowage accepts and ignores (start-up logs a warning naming it). */
export const ignored = (description: string) => optional({ 'x-kind': 'ignored', description } as unknown as TUnsafe<unknown>);
/** A key stowage refuses to start with (its meaning would be silently lost), with the reason. */
export const refused = (message: string, description: string) =>
  optional({ 'x-kind': 'refused', 'x-message': message, description } as unknown as TUnsafe<never>);
