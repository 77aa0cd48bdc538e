import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { parseGoDuration } from '../../src/config/duration.js';

const CWD = '/srv/stowage';
const parse = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseConfig(yaml, env, 'test.yml', CWD);
const fails = (t: Test, yaml: string, pattern: RegExp, env: NodeJS.ProcessEnv = {}) => {
  try {
    parse(yaml, env);
    t.fail(`expected a ConfigError matching ${pattern}`);
  } catch (e) {
    t.ok(e instanceof ConfigError, 'a ConfigError');
    t.match((e as Error).message, pattern);
    t.notMatch((e as Error).message, /\n/, 'one line');
  }
};

t.test('Go durations', async (t) => {
  t.equal(parseGoDuration('0'), 0);
  t.equal(parseGoDuration('300ms'), 300);
  t.equal(parseGoDuration('10s'), 10_000);
  t.equal(parseGoDuration('1.5h'), 5_400_000);
  t.equal(parseGoDuration('2h45m'), 9_900_000);
  for (const bad of ['', '10', 'abc', '5 m', 'm5', '1d']) t.equal(parseGoDuration(bad), undefined, `rejects ${JSON.stringify(bad)}`);
});

t.test('embedded defaults equal config/config.yml', async (t) => {
  const file = resolve(import.meta.dirname, '../../config/config.yml');
  const fromFile = parseConfig(readFileSync(file, 'utf8'), {}, file, CWD);
  const defaults = loadConfig({ cwd: CWD });
  t.same(fromFile, defaults);
  t.same(defaults.storage.backend, { driver: 'filesystem', rootdirectory: '/srv/stowage/data' });
  t.equal(defaults.metadata.path, '/srv/stowage/data/stowage.sqlite');
  t.equal(defaults.http.host, '0.0.0.0');
  t.equal(defaults.http.port, 5000);
  t.equal(defaults.storage.delete.enabled, false);
  t.equal(defaults.defaultUpstream, 'docker.io');
  t.same(defaults.upstreams.map((u) => [u.name, u.url, u.tagTtlMs, u.revalidateTimeoutMs]), [['docker.io', 'https://registry-1.docker.io', 300_000, 3_000]]);
  t.same(defaults.storage.maintenance.uploadpurging, { enabled: true, ageMs: 168 * 3_600_000, intervalMs: 24 * 3_600_000, dryrun: false });
});

t.test("Debian's registry:2 config loads as is", async (t) => {
  const c = parse(`version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`);
  t.same(c.storage.backend, { driver: 'filesystem', rootdirectory: '/var/lib/docker-registry' });
  t.same(c.http.headers, { 'X-Content-Type-Options': ['nosniff'] });
  t.same(c.log.fields, { service: 'registry' });
  t.same(c.upstreams, [], 'no upstream unless configured');
  t.equal(c.defaultUpstream, undefined);
});

t.test('environment overrides', async (t) => {
  const c = parse('version: 0.1\nstorage: {inmemory: {}}\n', {
    REGISTRY_HTTP_ADDR: '127.0.0.1:6000',
    REGISTRY_HTTP_HOST: 'https://reg.example.com/',
    REGISTRY_HTTP_SECRET: 's3cret',
    REGISTRY_HTTP_RELATIVEURLS: 'true',
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/data',
    REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '2h',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL: '30m',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN: 'true',
    REGISTRY_LOG_LEVEL: 'debug',
    REGISTRY_LOG_FORMATTER: 'text',
    REGISTRY_PROXY_REMOTEURL: 'https://registry-1.docker.io',
    REGISTRY_PROXY_USERNAME: 'me',
    REGISTRY_PROXY_PASSWORD: 'pw',
    REGISTRY_PROXY_TTL: '72h',
    REGISTRY_METADATA_PATH: '/var/idx.sqlite',
    UNRELATED: 'x',
    REGISTRY_SOMETHING_UNKNOWN: 'ignored',
  });
  t.same([c.http.host, c.http.port, c.http.externalUrl, c.http.secret, c.http.relativeUrls], ['127.0.0.1', 6000, 'https://reg.example.com', 's3cret', true]);
  t.same(c.storage.backend, { driver: 'filesystem', rootdirectory: '/data' }, 'a filesystem root selects the filesystem driver');
  t.equal(c.storage.delete.enabled, true);
  t.same(c.storage.maintenance.uploadpurging, { enabled: false, ageMs: 7_200_000, intervalMs: 1_800_000, dryrun: true });
  t.equal(c.log.level, 'debug');
  t.equal(c.metadata.path, '/var/idx.sqlite');
  t.equal(c.upstreams.length, 1);
  t.same([c.upstreams[0]!.name, c.upstreams[0]!.url, c.upstreams[0]!.username, c.upstreams[0]!.password, c.upstreams[0]!.contentTtlMs], ['docker.io', 'https://registry-1.docker.io', 'me', 'pw', 72 * 3_600_000]);
  t.equal(c.defaultUpstream, 'docker.io', 'proxy.remoteurl becomes the default upstream');
  fails(t, 'version: 0.1', /^config \(REGISTRY_STORAGE_DELETE_ENABLED\): expected a boolean, got "maybe"$/, { REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_HTTP_ADDR\)/, { REGISTRY_HTTP_ADDR: 'nonsense' });
});

t.test('proxy block naming', async (t) => {
  t.equal(parse('proxy: {remoteurl: "https://quay.io"}').upstreams[0]!.name, 'quay.io');
  t.equal(parse('proxy: {remoteurl: "https://index.docker.io"}').upstreams[0]!.name, 'docker.io');
  t.equal(parse('proxy: {remoteurl: "http://127.0.0.1:5001"}').upstreams[0]!.name, '127.0.0.1_5001', 'a port becomes _ (the name is a cache prefix)');
});

t.test('upstreams list', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  writeFileSync(join(dir, 'pw'), 'from-file\n');
  const c = parseConfig(`
upstreams:
  - name: ghcr.io
    url: https://ghcr.io/
    username: bot
    password_file: pw
    tag_ttl: 1m
    negative_ttl: 5s
    revalidate_timeout: 500ms
    timeout: 2s
    max_concurrent: 4
  - name: local.test
    url: http://127.0.0.1:5001
    timeout: {connect: 1s, headers: 2s, body: 3s}
default_upstream: local.test
`, {}, 'x.yml', dir);
  const [g, l] = c.upstreams;
  t.same([g!.url, g!.username, g!.password, g!.tagTtlMs, g!.negativeTtlMs, g!.revalidateTimeoutMs, g!.connectTimeoutMs, g!.bodyTimeoutMs, g!.maxConcurrent],
    ['https://ghcr.io', 'bot', 'from-file', 60_000, 5_000, 500, 2_000, 2_000, 4]);
  t.same([l!.connectTimeoutMs, l!.headersTimeoutMs, l!.bodyTimeoutMs], [1_000, 2_000, 3_000]);
  t.equal(c.defaultUpstream, 'local.test');
});

t.test('every problem is one line naming the key', async (t) => {
  fails(t, 'http: {adr: ":5000"}', /^config: http\.adr: unknown key$/);
  fails(t, 'storage: {delete: {enabled: maybe}}', /^config: storage\.delete\.enabled: expected a boolean, got "maybe"$/);
  fails(t, 'http: {addr: abc}', /^config: http\.addr: expected "host:port" or ":port", got "abc"$/);
  fails(t, 'storage: {maintenance: {uploadpurging: {age: forever}}}', /^config: storage\.maintenance\.uploadpurging\.age: expected a duration/);
  fails(t, 'storage: {filesystem: {rootdirectory: /a}, inmemory: {}}', /^config: storage: exactly one storage driver/);
  fails(t, 'storage: {s3: {bucket: x}}', /^config: storage\.s3: storage driver not supported/);
  fails(t, 'default_upstream: nowhere', /^config: default_upstream: names no configured upstream/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io"}, {name: a.io, url: "https://b.io"}]', /^config: upstreams\[1\]\.name: duplicate upstream name/);
  fails(t, 'upstreams: [{name: a.io, url: "ftp://a.io"}]', /^config: upstreams\[0\]\.url: expected an http:\/\/ or https:\/\/ URL/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io/v2"}]', /^config: upstreams\[0\]\.url: expected a URL without path/);
  fails(t, 'upstreams: [{name: "Not A Host", url: "https://a.io"}]', /^config: upstreams\[0\]\.name: expected a lower-case host name/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", max_concurrent: 0}]', /^config: upstreams\[0\]\.max_concurrent: expected a whole number from 1 to 1024/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", password_file: /nonexistent/pw}]', /^config: upstreams\[0\]\.password_file: cannot read/);
  fails(t, 'auth: {htpasswd: {realm: x, path: /p}}', /^config: auth: not supported yet/);
  fails(t, 'http: {tls: {certificate: /c}}', /^config: http\.tls: not supported: terminate TLS in front/);
  fails(t, 'version: 0.2', /^config: version: expected 0\.1/);
  fails(t, 'log: {level: loud}', /^config: log\.level: expected one of/);
  fails(t, 'typo: 1', /^config: typo: unknown key$/);
  fails(t, 'http: [1, 2]', /^config: http: expected a mapping/);
  fails(t, 'http:\n  addr: ":5000"\n bad indent: x\n', /^config: test\.yml line \d+:/);
});

t.test('loadConfig reads a file and reports an unreadable one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  writeFileSync(join(dir, 'c.yml'), 'http: {addr: "127.0.0.1:7000"}\nstorage: {inmemory: {}}\n');
  const c = loadConfig({ file: 'c.yml', cwd: dir });
  t.same([c.http.port, c.storage.backend.driver, c.metadata.path], [7000, 'inmemory', ':memory:']);
  t.throws(() => loadConfig({ file: 'missing.yml', cwd: dir }), /config: cannot read missing\.yml/);
});
