/**
 * The configuration schema and what comes from it: an env override for every key, YAML-valued
 * variables, the error line of each field kind, defaults, the README's reference table, and
 * `stowage config check` (run as the real CLI) with secrets redacted.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { parse as parseYaml, stringify } from 'yaml';
import { decodeConfig, Problem } from '../../src/config/decode.js';
import { applyEnv, envKeys } from '../../src/config/env.js';
import {
  addr, bool, duration, int, KINDS, list, oneOf, optional, path, percent, secret, section, size, str, url, type Schema,
} from '../../src/config/kinds.js';
import { ConfigError, parseConfigDetailed } from '../../src/config/load.js';
import { effectiveYaml, referenceTable } from '../../src/config/reference.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { REDACT_PATHS } from '../../src/log.js';

const CWD = '/srv/stowage';
const ROOT = ConfigSchema as unknown as Schema;
const REPO = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

const load = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseConfigDetailed(yaml, env, 'test.yml', CWD);
const at = (value: unknown, path: string[]): unknown => path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], value);
const failsWith = (t: Test, fn: () => unknown, pattern: RegExp) => {
  try {
    fn();
    t.fail(`expected an error matching ${pattern}`);
  } catch (e) {
    t.ok(e instanceof ConfigError, 'a ConfigError');
    t.match((e as Error).message, pattern);
    t.notMatch((e as Error).message, /\n/, 'one line');
  }
};

/**
 * A file every env-settable key can be added to: a proxy block (so proxy.* have a section), an
 * upstream with a mirror, a debug server, a webhook, one health check of each kind and a signature
 * rule (list items by index).
 */
const BASE = {
  version: '0.1',
  proxy: { remoteurl: 'https://quay.io' },
  upstreams: [{ name: 'docker.io', url: 'https://registry-1.docker.io', mirrors: [{ url: 'http://mirror.test:5000' }] }],
  http: { debug: { addr: '127.0.0.1:5001' }, tls: { certificate: '/etc/stowage/cert.pem', key: '/etc/stowage/key.pem' } },
  notifications: { endpoints: [{ name: 'hook', url: 'http://127.0.0.1:8080/events' }] },
  health: { file: [{ file: '/srv/maintenance' }], http: [{ uri: 'http://127.0.0.1:8080/ok' }], tcp: [{ addr: 'redis:6379' }] },
  auth: { htpasswd: { realm: 'r', path: '/etc/stowage/htpasswd' }, token: { realm: 'https://auth.test/token', service: 's', issuer: 'i' } },
  access: [{ repository: '**' }],
  policy: { rules: [{ repository: '**' }] },
};

/** The keys each object-store driver section cannot do without. */
const OBJECT_STORE_REQUIRED: Record<string, Record<string, string>> = {
  s3: { region: 'eu-west-1', bucket: 'registry-bucket' },
  oss: { accesskeyid: 'id', accesskeysecret: 'secret', region: 'oss-cn-beijing', bucket: 'registry-bucket' },
  azure: { accountname: 'account', accountkey: 'a2V5', container: 'registry' },
  swift: { authurl: 'http://127.0.0.1:8080/auth/v1.0', username: 'test:tester', password: 'testing', container: 'registry' },
};

t.test('every scalar key can be set by its REGISTRY_ variable, with the same effect as in the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-env-'));
  const aFile = join(dir, 'a-file');
  writeFileSync(aFile, 'pw\n');
  // List items by index, as registry:2 does: REGISTRY_UPSTREAMS_0_TAG_TTL.
  const keys = envKeys(ROOT).filter((k) => !k.yaml).map((k) => ({ ...k, name: k.name.replaceAll('<N>', '0'), path: k.path.map((p) => (p === '<n>' ? '0' : p)) }));
  const names = keys.map((k) => k.name);
  // The 19 variables the hand-written loader knew are among them.
  for (const old of ['REGISTRY_VERSION', 'REGISTRY_LOG_LEVEL', 'REGISTRY_LOG_FORMATTER', 'REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY',
    'REGISTRY_STORAGE_DELETE_ENABLED', 'REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED', 'REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE',
    'REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL', 'REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN', 'REGISTRY_HTTP_ADDR',
    'REGISTRY_HTTP_HOST', 'REGISTRY_HTTP_SECRET', 'REGISTRY_HTTP_RELATIVEURLS', 'REGISTRY_PROXY_REMOTEURL', 'REGISTRY_PROXY_USERNAME',
    'REGISTRY_PROXY_PASSWORD', 'REGISTRY_PROXY_TTL', 'REGISTRY_METADATA_PATH', 'REGISTRY_DEFAULT_UPSTREAM']) {
    t.ok(names.includes(old), old);
  }
  t.ok(names.includes('REGISTRY_UPSTREAMS_0_TIMEOUT_CONNECT'), 'inside list items and mapping-or-duration keys too');
  for (const key of keys) {
    const kind = key.schema['x-kind'] as string;
    const sample = kind === 'path' ? aFile : (key.schema.examples as string[] | undefined)?.[0] ?? KINDS[kind]!.example(key.schema);
    // An object-store driver's key needs that driver's required keys beside it (in the file).
    const required = key.path[0] === 'storage' ? OBJECT_STORE_REQUIRED[key.path[1]!] : undefined;
    const base = required ? { ...BASE, storage: { [key.path[1]!]: required } } : BASE;
    const plain = load(stringify(base)).effective;
    const fromEnv = load(stringify(base), { [key.name]: sample }).effective;
    const inFile = structuredClone(base) as Record<string, unknown>;
    let node = inFile;
    for (const k of key.path.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    node[key.path.at(-1)!] = parseYaml(sample);
    const fromFile = load(stringify(inFile)).effective;
    t.same(at(fromEnv, key.path), at(fromFile, key.path), `${key.name}=${sample} arrives as ${key.path.join('.')}`);
    if (key.name !== 'REGISTRY_VERSION') t.notSame(at(fromEnv, key.path), at(plain, key.path), `${key.name} changed something`);
  }
  t.ok(keys.length >= 36, `${keys.length} scalar keys`);
});

t.test('every key has its own variable', async (t) => {
  const names = envKeys(ROOT).map((k) => k.name);
  t.same(names.filter((n, i) => names.indexOf(n) !== i), [], 'no two keys share a variable');
  t.ok(names.includes('REGISTRY_UPSTREAMS') && names.includes('REGISTRY_NOTIFICATIONS') && names.includes('REGISTRY_STORAGE'), 'sections and lists have one too');
});

t.test('variables naming a list or a mapping hold YAML', async (t) => {
  const { config, warnings } = load('version: 0.1', {
    REGISTRY_UPSTREAMS: '[{name: ghcr.io, url: "https://ghcr.io", tag_ttl: 1m}, {name: quay.io, url: "https://quay.io", timeout: 2s}]',
    REGISTRY_DEFAULT_UPSTREAM: 'quay.io',
    REGISTRY_HTTP_HEADERS: '{X-Content-Type-Options: [nosniff], X-One: single}',
    REGISTRY_LOG_FIELDS: 'service: registry',
    REGISTRY_NOTIFICATIONS: 'endpoints: [{name: a, url: "http://hook/events", timeout: 2s}]',
    REGISTRY_REDIS: 'addr: redis:6379',
  });
  t.same(config.upstreams.map((u) => [u.name, u.tagTtlMs, u.connectTimeoutMs]), [['ghcr.io', 60_000, 10_000], ['quay.io', 300_000, 2_000]]);
  t.equal(config.defaultUpstream, 'quay.io');
  t.same(config.http.headers, { 'X-Content-Type-Options': ['nosniff'], 'X-One': ['single'] });
  t.same(config.log.fields, { service: 'registry' });
  t.same(config.notifications.endpoints.map((e) => [e.name, e.url, e.timeout]), [['a', 'http://hook/events', 2000]], 'a whole section as YAML');
  t.same(warnings, ['redis: ignored (registry:2 Redis cache; not used)'], 'an ignored section is reported');

  // registry:2's other forms: a list item by index (one past the end appends), a mapping entry by key.
  const indexed = load('upstreams: [{name: ghcr.io, url: "https://ghcr.io"}]', {
    REGISTRY_UPSTREAMS_0_TAG_TTL: '2m', REGISTRY_UPSTREAMS_1_NAME: 'quay.io', REGISTRY_UPSTREAMS_1_URL: 'https://quay.io',
    REGISTRY_UPSTREAMS_1_CIRCUIT_BREAKER_FAILURES: '7', REGISTRY_LOG_FIELDS_SERVICE: 'registry', REGISTRY_REDIS_ADDR: 'redis:6379',
  });
  t.same(indexed.config.upstreams.map((u) => [u.name, u.tagTtlMs, u.breakerFailures]), [['ghcr.io', 120_000, 3], ['quay.io', 300_000, 7]]);
  t.same(indexed.config.log.fields, { service: 'registry' });
  t.same(indexed.warnings, ['redis: ignored (registry:2 Redis cache; not used)'], 'a variable inside an ignored section is reported too');
  failsWith(t, () => load('', { REGISTRY_UPSTREAMS_2_NAME: 'x.io' }), /^config \(REGISTRY_UPSTREAMS_2_NAME\): upstreams\[2\]\.name: upstreams has 0 items: number them from 0 without gaps$/);
  failsWith(t, () => load('', { REGISTRY_UPSTREAMS_0_NAME: 'x.io' }), /^config \(REGISTRY_UPSTREAMS_0_NAME\): upstreams\[0\]\.url: required$/);
  failsWith(t, () => load('', { REGISTRY_AUTH_HTPASSWD_PATH: '/auth/htpasswd' }), /^config \(REGISTRY_AUTH_HTPASSWD_PATH\): auth\.htpasswd\.realm: required$/);
  t.same(load('', { REGISTRY_AUTH_HTPASSWD_PATH: '/auth/htpasswd', REGISTRY_AUTH_HTPASSWD_REALM: 'r' }).config.auth?.htpasswd, { realm: 'r', path: '/auth/htpasswd' }, 'htpasswd from two variables, as registry:2 images are often run');
  failsWith(t, () => load('', { REGISTRY_STORAGE_GCS_BUCKET: 'b' }), /^config \(REGISTRY_STORAGE_GCS_BUCKET\): storage\.gcs: storage driver not supported \(stowage has filesystem, inmemory, s3, oss, azure and swift\)$/);
  failsWith(t, () => load('', { REGISTRY_STORAGE_S3_BUCKET: 'registry-bucket' }), /^config \(REGISTRY_STORAGE_S3_BUCKET\): storage\.s3\.region: required$/);
  t.same(load('', { REGISTRY_STORAGE_S3_BUCKET: 'registry-bucket', REGISTRY_STORAGE_S3_REGION: 'us-east-1', REGISTRY_STORAGE_S3_CHUNKSIZE: '16MiB' }).config.storage.backend,
    { driver: 's3', bucket: 'registry-bucket', region: 'us-east-1', chunksize: 16 * 1024 * 1024, forcepathstyle: false, encrypt: false, secure: true, skipverify: false,
      multipartcopychunksize: 32 * 1024 * 1024, multipartcopymaxconcurrency: 100, multipartcopythresholdsize: 32 * 1024 * 1024, storageclass: 'STANDARD' },
    'REGISTRY_STORAGE_S3_* select and configure the s3 driver, registry:2 defaults filled in');
  t.same(load('', { REGISTRY_SOMETHING_ELSE: 'x', REGISTRY_PORT: 'tcp://10.0.0.1:5000', REGISTRY_HTTP_ADDR_EXTRA: 'x' }).warnings, [], 'variables naming no key are ignored');

  const sectionThenKey = load('version: 0.1', { REGISTRY_HTTP: '{addr: ":6000", relativeurls: true}', REGISTRY_HTTP_ADDR: ':7000' }).config.http;
  t.same([sectionThenKey.port, sectionThenKey.relativeUrls], [7000, true], 'a section variable, then a key variable inside it');
  t.same(load('proxy: {remoteurl: "https://quay.io"}', { REGISTRY_PROXY: '{remoteurl: "https://ghcr.io"}' }).config.upstreams.map((u) => u.url), ['https://ghcr.io'], 'a section variable replaces the section');

  failsWith(t, () => load('', { REGISTRY_UPSTREAMS: '[{url: "https://a.io"}]' }), /^config \(REGISTRY_UPSTREAMS\): upstreams\[0\]\.name: required$/);
  failsWith(t, () => load('', { REGISTRY_UPSTREAMS: '[{name: a.io, url: "https://a.io", tag_ttl: soon}]' }), /^config \(REGISTRY_UPSTREAMS\): upstreams\[0\]\.tag_ttl: expected a duration such as "30s", "5m" or "168h", got "soon"$/);
  failsWith(t, () => load('', { REGISTRY_UPSTREAMS: '[{name: a.io' }), /^config \(REGISTRY_UPSTREAMS\): upstreams: not valid YAML: /);
  failsWith(t, () => load('', { REGISTRY_HTTP_HEADERS: '[a]' }), /^config \(REGISTRY_HTTP_HEADERS\): http\.headers: expected a mapping of header name to a list of values, got \["a"\]$/);
  t.same(load('', { REGISTRY_AUTH: 'htpasswd: {realm: r, path: /p}' }).config.auth?.htpasswd, { realm: 'r', path: '/p' }, 'REGISTRY_AUTH as YAML');
  failsWith(t, () => load('', { REGISTRY_HTTP_TLS: '{certificate: /c}' }), /^config \(REGISTRY_HTTP_TLS\): http\.tls\.key: required$/);
  failsWith(t, () => load('', { REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL: 'a@b.c', REGISTRY_HTTP_TLS_CERTIFICATE: '/c', REGISTRY_HTTP_TLS_KEY: '/k' }), /^config \(REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL\): http\.tls\.letsencrypt: not supported: ACME needs the internet/);
  t.same(load('', { REGISTRY_ACCESS: '[{repository: "docker.io/**", pull: [anonymous]}]', REGISTRY_GROUPS: '{ci: [r1, r2]}' }).config.access, [{ repository: 'docker.io/**', pull: ['anonymous'] }], 'access rules from YAML variables');
  t.same(load('storage: {inmemory: {}}', { REGISTRY_STORAGE: 'filesystem' }).config.storage.backend, { driver: 'filesystem', rootdirectory: '/srv/stowage/data' }, 'REGISTRY_STORAGE=filesystem replaces inmemory');
  t.same(load('', { REGISTRY_STORAGE: '{inmemory: {}}' }).config.storage.backend, { driver: 'inmemory' }, 'REGISTRY_STORAGE as a YAML mapping');
});

t.test('the error line of each field kind', async (t) => {
  // A section as another helper would add one; decoded directly, then through REGISTRY_ variables.
  const schema = section({
    cache: section({
      max_size: size({ description: 'Most bytes kept', default: '200GiB' }),
      low_watermark: percent({ description: 'Evict down to', default: '90%' }),
      dir: path({ description: 'Where', default: 'cache' }),
      pin: list(str({ description: 'A repository' }), { description: 'Never evicted', default: [] }),
      mode: oneOf(['lru', 'fifo'], { description: 'Policy', default: 'lru' }),
      key: optional(secret({ description: 'A secret' })),
      every: duration({ description: 'How often', default: '5m' }),
      workers: int({ description: 'Workers', default: 2, min: 1, max: 8 }),
      enabled: bool({ description: 'On', default: true }),
      origin: optional(url({ description: 'Where from' })),
      listen: optional(addr({ description: 'Where to listen' })),
    }),
  });
  const decode = (raw: unknown) => decodeConfig(schema, raw, { cwd: '/w' }).value as { cache: Record<string, unknown> };
  t.same(decode({}).cache, { max_size: 200 * 2 ** 30, low_watermark: 0.9, dir: '/w/cache', pin: [], mode: 'lru', every: 300_000, workers: 2, enabled: true }, 'defaults, decoded');
  t.same(decode({ cache: { max_size: '10GB', low_watermark: '12.5%', dir: '/abs', pin: ['library/ubuntu'], mode: 'FIFO', key: 'k', every: '1h', workers: '8', enabled: 'false', origin: 'https://x.io/', listen: '[::1]:80' } }).cache,
    { max_size: 10e9, low_watermark: 0.125, dir: '/abs', pin: ['library/ubuntu'], mode: 'fifo', key: 'k', every: 3_600_000, workers: 8, enabled: false, origin: 'https://x.io', listen: { host: '::1', port: 80 } });
  const cases: Array<[string, unknown, string]> = [
    ['max_size', '12 parsecs', 'expected a size such as "512MiB", "200GiB" or a number of bytes, got "12 parsecs"'],
    ['max_size', -1, 'expected a size such as "512MiB", "200GiB" or a number of bytes, got -1'],
    ['low_watermark', '120%', 'expected a percentage from 0% to 100% such as "90%", got "120%"'],
    ['low_watermark', 0.9, 'expected a percentage from 0% to 100% such as "90%", got 0.9'],
    ['dir', '', 'expected a file or directory path, got ""'],
    ['pin', 'library/ubuntu', 'expected a list, got "library/ubuntu"'],
    ['pin', [['x']], 'expected a string, got ["x"]'],
    ['mode', 'random', 'expected lru or fifo, got "random"'],
    ['key', { a: 1 }, 'expected a string, got {"a":1}'],
    ['every', '5 minutes', 'expected a duration such as "30s", "5m" or "168h", got "5 minutes"'],
    ['workers', 9, 'expected a whole number from 1 to 8, got 9'],
    ['enabled', 'yes', 'expected a boolean, got "yes"'],
    ['origin', 'ftp://x', 'expected an http:// or https:// URL, got "ftp://x"'],
    ['listen', 'localhost', 'expected "host:port" or ":port", got "localhost"'],
  ];
  for (const [key, bad, message] of cases) {
    try {
      decode({ cache: { [key]: bad } });
      t.fail(`${key}: ${JSON.stringify(bad)} accepted`);
    } catch (e) {
      t.ok(e instanceof Problem);
      t.equal((e as Error).message, `cache.${key}${key === 'pin' && Array.isArray(bad) ? '[0]' : ''}: ${message}`);
    }
  }
  const raw: Record<string, unknown> = {};
  const fromEnv = applyEnv(schema, raw, { REGISTRY_CACHE_MAX_SIZE: '1MiB', REGISTRY_CACHE_PIN: '[a, b]', REGISTRY_CACHE_LOW_WATERMARK: '50%' });
  t.same(decode(raw).cache.max_size, 2 ** 20, 'a new section gets its variables');
  t.same([decode(raw).cache.pin, decode(raw).cache.low_watermark], [['a', 'b'], 0.5]);
  t.same(Object.fromEntries(fromEnv), {
    cache: 'REGISTRY_CACHE_PIN', // made by the first variable applied (fewest words first), for errors about the section
    'cache.low_watermark': 'REGISTRY_CACHE_LOW_WATERMARK', 'cache.max_size': 'REGISTRY_CACHE_MAX_SIZE', 'cache.pin': 'REGISTRY_CACHE_PIN',
  });
  t.ok(referenceTable().includes('| `storage.delete.enabled` | boolean | `false` | `REGISTRY_STORAGE_DELETE_ENABLED` |'));
});

t.test('every default in the schema is applied to an empty file', async (t) => {
  const { effective } = load('');
  let checked = 0;
  const walk = (s: Schema, path: string[]): void => {
    for (const [k, p] of Object.entries(s.properties as Record<string, Schema>)) {
      if ('default' in p) {
        const expected = decodeConfig(section({ v: p as never }), { v: structuredClone(p.default) }, { cwd: CWD }).value as { v: unknown };
        t.same(at(effective, [...path, k]), expected.v, `${[...path, k].join('.')} = ${JSON.stringify(p.default)}`);
        checked++;
      } else if (p.type === 'object' && p.properties && at(effective, [...path, k]) !== undefined) {
        walk(p, [...path, k]);
      }
    }
  };
  walk(ROOT, []);
  t.ok(checked >= 13, `${checked} defaults checked`);
  t.same(load('').config.storage.backend, { driver: 'filesystem', rootdirectory: '/srv/stowage/data' }, 'no driver: filesystem');
});

t.test('the README table is the generated one', async (t) => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const m = /<!-- config-reference:start -->\n([\s\S]*?)<!-- config-reference:end -->/.exec(readme);
  t.ok(m, 'README has the markers');
  t.equal(m?.[1], referenceTable(), 'README.md matches `stowage config reference` (paste its output between the markers)');
});

t.test('secrets are redacted in the effective config and in logs', async (t) => {
  const { effective } = load(`
http: {secret: http-s3cret}
proxy: {remoteurl: "https://quay.io", username: me, password: proxy-s3cret}
upstreams: [{name: ghcr.io, url: "https://ghcr.io", password: up-s3cret}]
`);
  const text = effectiveYaml(effective);
  t.notMatch(text, /s3cret/);
  t.equal(text.match(/\[redacted\]/g)?.length, 3);
  t.match(text, /username: me/);
  t.same(parseYaml(text).upstreams[0].tag_ttl, '5m', 'durations written as a user would');
  t.ok(REDACT_PATHS.includes('*.*.password') && REDACT_PATHS.includes('secret'), 'schema secrets are log redaction paths');
  // A secret key is redacted by its name wherever it appears: it must not be the name of a field
  // every request line carries (a `url` secret once blanked the URL of every request logged).
  const requestFields = ['url', 'method', 'status', 'repo', 'reference', 'digest', 'cache', 'bytes', 'ms', 'reqId', 'user', 'upstream', 'msg'];
  t.same(requestFields.filter((f) => REDACT_PATHS.includes(f)), [], 'no request-log field is a redacted name');
});

t.test('stowage config check and reference, as the CLI', async (t) => {
  const cli = join(REPO, 'dist/cli.js');
  const dir = mkdtempSync(join(tmpdir(), 'cfg-check-'));
  const env = { PATH: process.env.PATH, REGISTRY_HTTP_ADDR: '127.0.0.1:5999' };
  writeFileSync(join(dir, 'ok.yml'), 'storage: inmemory\nproxy: {remoteurl: "https://quay.io", password: hunter2}\nredis: {addr: "redis:6379"}\n');
  const ok = await run(process.execPath, [cli, 'config', 'check', '--config', join(dir, 'ok.yml')], { env });
  const shown = parseYaml(ok.stdout);
  t.same([shown.http.addr, shown.proxy.password, shown.metadata.path, shown.storage], ['127.0.0.1:5999', '[redacted]', ':memory:', { inmemory: {}, delete: { enabled: false }, maintenance: { uploadpurging: { enabled: true, age: '168h', interval: '24h', dryrun: false }, gc: { enabled: false, interval: '24h', grace: '10m', delete_untagged: false } }, redirect: { disable: true } }]);
  t.notMatch(ok.stdout, /hunter2/);
  t.equal(ok.stderr, 'stowage: warning: config: redis: ignored (registry:2 Redis cache; not used)\n');

  writeFileSync(join(dir, 'bad.yml'), 'storage: {delete: {enabled: maybe}}\n');
  const bad = await run(process.execPath, [cli, 'config', 'check', '--config', join(dir, 'bad.yml')], { env }).then(() => undefined, (e: { code: number; stderr: string; stdout: string }) => e);
  t.equal(bad?.code, 1);
  t.equal(bad?.stderr, 'stowage: config: storage.delete.enabled: expected a boolean, got "maybe"\n');
  t.equal(bad?.stdout, '');
  const badEnv = await run(process.execPath, [cli, 'config', 'check'], { env: { ...env, REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' } }).then(() => undefined, (e: { code: number; stderr: string }) => e);
  t.equal(badEnv?.stderr, 'stowage: config (REGISTRY_STORAGE_DELETE_ENABLED): storage.delete.enabled: expected a boolean, got "maybe"\n');

  const ref = await run(process.execPath, [cli, 'config', 'reference'], { env });
  t.equal(ref.stdout, referenceTable());
});
