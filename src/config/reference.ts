/**
 * What the schema says, for people: the README's reference table (`stowage config reference`) and
 * the effective configuration in config.yml's shape with secrets redacted (`stowage config check`).
 */
import { stringify } from 'yaml';
import { isMapping, isSection, schemaShape } from './decode.js';
import { envKeys } from './env.js';
import { KINDS, type Schema } from './kinds.js';
import { ConfigSchema } from './schema.js';

const ROOT = ConfigSchema as unknown as Schema;
export const REDACTED = '[redacted]';

const props = (s: Schema): Array<[string, Schema]> => Object.entries(s.properties as Record<string, Schema>);
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function typeOf(s: Schema): string {
  const kind = s['x-kind'] as string | undefined;
  const secret = s.secret ? ', secret' : '';
  if (kind === 'ignored') return 'any (ignored)';
  if (kind === 'refused') return 'refused at start-up';
  if (kind !== undefined) return `${KINDS[kind]!.docType(s)}${secret}`;
  if (Array.isArray(s.anyOf)) return (s.anyOf as Schema[]).map(typeOf).join(' or ');
  if (s.type === 'array') return `list of ${typeOf(s.items as Schema)}`;
  if (isMapping(s.patternProperties)) return `mapping of ${typeOf(Object.values(s.patternProperties as Record<string, Schema>)[0]!)}`;
  return 'mapping';
}

function defaultOf(s: Schema, required: boolean): string {
  if (!('default' in s)) return required ? 'required' : '—';
  const d = s.default;
  const text = typeof d === 'string' ? (d === '' ? '""' : d) : JSON.stringify(d);
  return `\`${text}\``;
}

/** The markdown table: key, type, default, environment variable, description. */
export function referenceTable(): string {
  const rows: string[] = ['| key | type | default | environment | description |', '| --- | --- | --- | --- | --- |'];
  for (const k of envKeys(ROOT)) {
    // Sections with keys of their own are only containers: their keys have the rows.
    if (isSection(k.schema) && !k.schema['x-kind'] && props(k.schema).length > 0) continue;
    const key = k.path.join('.').replace(/\.<n>/g, '[]');
    rows.push(`| \`${key}\` | ${cell(typeOf(k.schema))} | ${cell(defaultOf(k.schema, k.required))} | \`${k.name}\` | ${cell(String(k.schema.description ?? ''))} |`);
  }
  return `${rows.join('\n')}\n`;
}

/** Decoded value -> what a user would write, secrets replaced by "[redacted]". */
function encode(s: Schema, value: unknown): unknown {
  if (value === undefined) return undefined;
  const kind = s['x-kind'] as string | undefined;
  // Ignored sections are left out: nothing is known about them, not even which of their keys are secret.
  if (kind === 'ignored' || kind === 'refused') return undefined;
  if (kind !== undefined) return s.secret ? REDACTED : KINDS[kind]!.encode?.(value, s) ?? value;
  if (Array.isArray(s.anyOf)) {
    const shape = isMapping(value) ? 'mapping' : Array.isArray(value) ? 'list' : 'scalar';
    return encode((s.anyOf as Schema[]).find((a) => schemaShape(a) === shape)!, value);
  }
  if (s.type === 'array') return (value as unknown[]).map((v) => encode(s.items as Schema, v));
  const out: Record<string, unknown> = {};
  if (isMapping(s.patternProperties)) {
    const valueSchema = Object.values(s.patternProperties as Record<string, Schema>)[0]!;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = encode(valueSchema, v);
    return out;
  }
  const fields = s.properties as Record<string, Schema>;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const e = encode(fields[k]!, v);
    if (e !== undefined) out[k] = e;
  }
  return out;
}

/** The effective configuration as config.yml text, secrets redacted. */
export function effectiveYaml(effective: unknown): string {
  return stringify(encode(ROOT, effective));
}

/** Names of secret keys ("password", "secret", ...), for the log redaction paths. */
export function secretKeyNames(): string[] {
  const names = new Set<string>();
  const walk = (s: Schema, name: string): void => {
    if (s.secret) names.add(name);
    for (const [k, p] of isMapping(s.properties) ? props(s) : []) walk(p, k);
    if (s.type === 'array') walk(s.items as Schema, name);
    for (const alt of (s.anyOf ?? []) as Schema[]) walk(alt, name);
    for (const v of Object.values((s.patternProperties ?? {}) as Record<string, Schema>)) walk(v, name);
  };
  walk(ROOT, '');
  return [...names].sort();
}
