import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { DurationError, parseGoDuration } from '../../src/config/duration.js';

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
  t.equal(parseGoDuration('1m30s'), 90_000);
  t.equal(parseGoDuration('.5s'), 500);
  t.equal(parseGoDuration('1500us'), 2, 'rounded to whole ms');
  t.equal(parseGoDuration('0s'), 0);
  for (const bad of ['', '10', 'abc', '5 m', 'm5', '1d', '-5s', '.s', 's', '1h-5m', '1e3s']) {
    t.throws(() => parseGoDuration(bad), DurationError, `rejects ${JSON.stringify(bad)}`);
  }
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
  fails(t, 'version: 0.1', /^config \(REGISTRY_STORAGE_DELETE_ENABLED\): storage\.delete\.enabled: expected a boolean, got "maybe"$/, { REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_HTTP_ADDR\): http\.addr: expected "host:port" or ":port", got "nonsense"$/, { REGISTRY_HTTP_ADDR: 'nonsense' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_HTTP_RELATIVEURLS\): http\.relativeurls: expected a boolean, got "yes"$/, { REGISTRY_HTTP_RELATIVEURLS: 'yes' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE\): storage\.maintenance\.uploadpurging\.age: expected a duration/, { REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '7' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_PROXY_TTL\): proxy\.ttl: expected a duration/, { REGISTRY_PROXY_REMOTEURL: 'https://quay.io', REGISTRY_PROXY_TTL: 'week' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_PROXY_REMOTEURL\): proxy\.remoteurl: expected an http:\/\/ or https:\/\/ URL/, { REGISTRY_PROXY_REMOTEURL: 'quay.io' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_LOG_FORMATTER\): log\.formatter: expected json, text or logstash, got "xml"$/, { REGISTRY_LOG_FORMATTER: 'xml' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_LOG_LEVEL\): log\.level: expected one of/, { REGISTRY_LOG_LEVEL: 'loud' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_HTTP_HOST\): http\.host: expected an http:\/\/ or https:\/\/ URL/, { REGISTRY_HTTP_HOST: 'reg.example.com' });
});

t.test('environment overrides: version, default_upstream, formatter, storage driver', async (t) => {
  const yaml = `version: 0.1
upstreams:
  - {name: docker.io, url: "https://registry-1.docker.io"}
  - {name: ghcr.io, url: "https://ghcr.io"}
default_upstream: docker.io
`;
  t.equal(parse(yaml).defaultUpstream, 'docker.io');
  t.equal(parse(yaml, { REGISTRY_DEFAULT_UPSTREAM: 'ghcr.io' }).defaultUpstream, 'ghcr.io', 'REGISTRY_DEFAULT_UPSTREAM (a key with an underscore)');
  fails(t, yaml, /^config \(REGISTRY_DEFAULT_UPSTREAM\): default_upstream: names no configured upstream: "quay.io"$/, { REGISTRY_DEFAULT_UPSTREAM: 'quay.io' });
  t.equal(parse('log: {level: info}', { REGISTRY_VERSION: '0.1' }).version, '0.1', 'REGISTRY_VERSION');
  fails(t, 'version: 0.1', /^config \(REGISTRY_VERSION\): version: expected 0\.1, got "0\.2"$/, { REGISTRY_VERSION: '0.2' });
  t.equal(parse('version: 0.1', { REGISTRY_LOG_FORMATTER: 'json' }).log.level, 'info', 'REGISTRY_LOG_FORMATTER accepted');
  t.equal(parse('version: 0.1', { REGISTRY_LOG_LEVEL: 'warning' }).log.level, 'warn', 'registry:2 "warning"');
  t.equal(parse('version: 0.1', { REGISTRY_HTTP_ADDR: ':5001' }).http.host, '0.0.0.0');
  t.equal(parse('version: 0.1', { REGISTRY_HTTP_ADDR: '[::1]:5001' }).http.host, '::1');

  // The filesystem root selects the filesystem driver; REGISTRY_STORAGE picks one (registry:2 does both).
  const mem = parse('storage: {filesystem: {rootdirectory: /x}, delete: {enabled: true}}', { REGISTRY_STORAGE: 'inmemory' });
  t.same(mem.storage.backend, { driver: 'inmemory' });
  t.equal(mem.metadata.path, ':memory:');
  t.equal(mem.storage.delete.enabled, true, 'the rest of storage stays');
  t.same(parse('storage: inmemory', { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: 'var' }).storage.backend, { driver: 'filesystem', rootdirectory: '/srv/stowage/var' });
  fails(t, 'version: 0.1', /^config \(REGISTRY_STORAGE\): storage: expected one of filesystem, inmemory, s3, oss, azure, swift \(the storage drivers stowage has\), got "gcs"$/, { REGISTRY_STORAGE: 'gcs' });
});

t.test('proxy block naming', async (t) => {
  t.equal(parse('proxy: {remoteurl: "https://quay.io"}').upstreams[0]!.name, 'quay.io');
  t.equal(parse('proxy: {remoteurl: "https://index.docker.io"}').upstreams[0]!.name, 'docker.io');
  t.equal(parse('proxy: {remoteurl: "https://registry-1.docker.io"}').upstreams[0]!.name, 'docker.io');
  t.equal(parse('proxy: {remoteurl: "https://docker.io/"}').upstreams[0]!.name, 'docker.io');
  t.equal(parse('proxy: {remoteurl: "http://127.0.0.1:5001"}').upstreams[0]!.name, '127.0.0.1_5001', 'a port becomes _ (the name is a cache prefix)');
  const c = parse('proxy: {remoteurl: "https://Mirror.Example.com:8443", username: u, password: p, ttl: 168h}');
  const u = c.upstreams[0]!;
  t.same([u.name, u.url, u.username, u.password, u.contentTtlMs, u.tagTtlMs, u.maxConcurrent], ['mirror.example.com_8443', 'https://mirror.example.com:8443', 'u', 'p', 168 * 3_600_000, 300_000, 16]);
  t.equal(c.defaultUpstream, 'mirror.example.com_8443', 'the proxy upstream is the default');
  const both = parse(`proxy: {remoteurl: "https://registry-1.docker.io"}
upstreams: [{name: ghcr.io, url: "https://ghcr.io"}]
default_upstream: ghcr.io
`);
  t.same(both.upstreams.map((x) => x.name), ['docker.io', 'ghcr.io']);
  t.equal(both.defaultUpstream, 'ghcr.io', 'default_upstream wins over the proxy block');
  fails(t, 'proxy: {remoteurl: "https://registry-1.docker.io"}\nupstreams: [{name: docker.io, url: "https://mirror.gcr.io"}]',
    /^config: upstreams\[0\]\.name: duplicate upstream name "docker.io" \(the proxy: block already defines it\)$/);
  fails(t, 'proxy: {username: u}', /^config: proxy\.remoteurl: required$/);
  fails(t, 'proxy: {remoteurl: "http://[::1]:5000"}', /^config: proxy\.remoteurl: the host "\[::1\]:5000" cannot be an upstream name/);
  fails(t, 'proxy: {remoteurl: "https://quay.io", exec: x}', /^config: proxy\.exec: unknown key$/);
});

t.test('upstreams list', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  writeFileSync(join(dir, 'pw'), 'from-file\n\n');
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
    ttl: 720h
  - name: Registry.Local:5000
    url: http://registry.local:5000
    timeout: 0
default_upstream: local.test
`, {}, 'x.yml', dir);
  const [g, l, r] = c.upstreams;
  t.same([g!.url, g!.username, g!.password, g!.tagTtlMs, g!.negativeTtlMs, g!.revalidateTimeoutMs, g!.connectTimeoutMs, g!.bodyTimeoutMs, g!.maxConcurrent],
    ['https://ghcr.io', 'bot', 'from-file', 60_000, 5_000, 500, 2_000, 2_000, 4]);
  t.same([l!.connectTimeoutMs, l!.headersTimeoutMs, l!.bodyTimeoutMs, l!.contentTtlMs], [1_000, 2_000, 3_000, 2_592_000_000]);
  t.equal(g!.contentTtlMs, 0, 'content kept forever by default');
  t.same([r!.name, r!.url, r!.connectTimeoutMs], ['registry.local_5000', 'http://registry.local:5000', 0], 'host:port names become host_port (cache prefix)');
  t.same([r!.tagTtlMs, r!.negativeTtlMs, r!.revalidateTimeoutMs, r!.maxConcurrent, r!.breakerFailures, r!.breakerCooldownMs], [300_000, 30_000, 3_000, 16, 3, 10_000], 'defaults');
  t.equal(c.defaultUpstream, 'local.test');
});

t.test('every problem is one line naming the key', async (t) => {
  fails(t, 'http: {adr: ":5000"}', /^config: http\.adr: unknown key$/);
  fails(t, 'storage: {delete: {enabled: maybe}}', /^config: storage\.delete\.enabled: expected a boolean, got "maybe"$/);
  fails(t, 'http: {addr: abc}', /^config: http\.addr: expected "host:port" or ":port", got "abc"$/);
  fails(t, 'storage: {maintenance: {uploadpurging: {age: forever}}}', /^config: storage\.maintenance\.uploadpurging\.age: expected a duration/);
  fails(t, 'storage: {filesystem: {rootdirectory: /a}, inmemory: {}}', /^config: storage: exactly one storage driver/);
  fails(t, 'storage: {gcs: {bucket: x}}', /^config: storage\.gcs: storage driver not supported/);
  fails(t, 'storage: {s3: {bucket: x, region: us-east-1}}', /^config: storage\.s3\.bucket: expected a bucket name of 3 to 63/);
  fails(t, 'storage: {azure: {accountname: a, accountkey: k, container: c}}', /^config: storage\.azure\.container: expected a container name/);
  fails(t, 'storage: {swift: {authurl: "ftp://x", username: u, password: p, container: c}}', /^config: storage\.swift\.authurl: expected an http:\/\/ or https:\/\/ URL/);
  fails(t, 'default_upstream: nowhere', /^config: default_upstream: names no configured upstream/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io"}, {name: a.io, url: "https://b.io"}]', /^config: upstreams\[1\]\.name: duplicate upstream name/);
  fails(t, 'upstreams: [{name: a.io, url: "ftp://a.io"}]', /^config: upstreams\[0\]\.url: expected an http:\/\/ or https:\/\/ URL/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io/v2"}]', /^config: upstreams\[0\]\.url: expected a URL without path/);
  fails(t, 'upstreams: [{name: "Not A Host", url: "https://a.io"}]', /^config: upstreams\[0\]\.name: expected a host name/);
  fails(t, 'upstreams: [{name: "a.io:99999", url: "https://a.io"}]', /^config: upstreams\[0\]\.name: expected a host name/);
  fails(t, 'upstreams: [{name: "a.io/x", url: "https://a.io"}]', /^config: upstreams\[0\]\.name: expected a host name/);
  fails(t, 'upstreams: [{name: "a.io:5000", url: "https://a.io"}, {name: "a.io_5000", url: "https://a.io"}]', /^config: upstreams\[1\]\.name: duplicate upstream name/);
  fails(t, 'upstreams: [{url: "https://a.io"}]', /^config: upstreams\[0\]\.name: required$/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", tag_ttl: 5}]', /^config: upstreams\[0\]\.tag_ttl: expected a duration such as "30s", "5m" or "168h", got 5$/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", timeout: 5}]', /^config: upstreams\[0\]\.timeout: expected a duration or \{connect, headers, body\}, got 5$/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", timeout: {conect: 1s}}]', /^config: upstreams\[0\]\.timeout\.conect: unknown key$/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", tagttl: 1m}]', /^config: upstreams\[0\]\.tagttl: unknown key$/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", password: x, password_file: /p}]', /^config: upstreams\[0\]\.password_file: give password or password_file, not both$/);
  fails(t, 'upstreams: {name: a.io}', /^config: upstreams: expected a list, got {"name":"a.io"}$/);
  fails(t, 'http: {addr: "1.2.3.4:70000"}', /^config: http\.addr: expected "host:port"/);
  fails(t, 'http: {addr: 5000}', /^config: http\.addr: expected "host:port" or ":port", got "5000"$/);
  fails(t, 'http: {host: "ftp://x"}', /^config: http\.host: expected an http:\/\/ or https:\/\/ URL/);
  fails(t, 'http: {prefix: /registry/}', /^config: http\.prefix: not supported/);
  fails(t, 'http: {net: unix}', /^config: http\.net: only tcp is supported/);
  fails(t, 'http: {headers: {X-A: [{a: 1}]}}', /^config: http\.headers\.X-A\[0\]: expected a string/);
  fails(t, 'http: {relativeurls: 1}', /^config: http\.relativeurls: expected a boolean, got 1$/);
  fails(t, 'http: {secret: [a]}', /^config: http\.secret: expected a string, got \["a"\]$/);
  fails(t, 'log: {fields: {a: {b: c}}}', /^config: log\.fields\.a: expected a string/);
  fails(t, 'log: {levl: info}', /^config: log\.levl: unknown key$/);
  fails(t, 'storage: {filesystem: {rootdir: /x}}', /^config: storage\.filesystem\.rootdir: unknown key$/);
  fails(t, 'storage: {maintenance: {uploadpurging: {enable: true}}}', /^config: storage\.maintenance\.uploadpurging\.enable: unknown key$/);
  fails(t, 'storage: {maintenance: {uploadpurging: {interval: 0}}}', /^config: storage\.maintenance\.uploadpurging\.interval: must be more than 0/);
  fails(t, 'metadata: {file: x}', /^config: metadata\.file: unknown key$/);
  fails(t, '"bad\\nkey": 1', /^config: bad\\nkey: unknown key$/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", max_concurrent: 0}]', /^config: upstreams\[0\]\.max_concurrent: expected a whole number from 1 to 1024/);
  fails(t, 'upstreams: [{name: a.io, url: "https://a.io", password_file: /nonexistent/pw}]', /^config: upstreams\[0\]\.password_file: cannot read/);
  fails(t, 'auth: {htpasswd: {realm: x}}', /^config: auth\.htpasswd\.path: required$/);
  fails(t, 'auth: {silly: {realm: x}}', /^config: auth\.silly: not supported/);
  fails(t, 'auth: {token: {realm: r, service: s, issuer: i, signingalgorithms: ES256}}', /^config: auth\.token\.signingalgorithms: expected a list/);
  fails(t, 'http: {tls: {certificate: /c}}', /^config: http\.tls\.key: required$/);
  fails(t, 'http: {tls: {certificate: /c, key: /k, letsencrypt: {cachefile: /x}}}', /^config: http\.tls\.letsencrypt: not supported: ACME needs the internet/);
  fails(t, 'http: {tls: {certificate: /c, key: /k, minimumtls: tls1.0}}', /^config: http\.tls\.minimumtls: expected tls1\.2 or tls1\.3/);
  fails(t, 'access: [{pull: [anonymous]}]', /^config: access\[0\]\.repository: required$/);
  fails(t, 'access: [{repository: "**", pul: [anonymous]}]', /^config: access\[0\]\.pul: unknown key$/);
  fails(t, 'version: 0.2', /^config: version: expected 0\.1/);
  fails(t, 'log: {level: loud}', /^config: log\.level: expected one of/);
  fails(t, 'typo: 1', /^config: typo: unknown key$/);
  fails(t, 'http: [1, 2]', /^config: http: expected a mapping/);
  fails(t, 'version: 0.1\nhttp:\n  addr: ":5000"\n bad indent: x\n', /^config: test\.yml line 4, column 1: All mapping items must start at the same column$/);
  fails(t, 'http: {addr: ":5000"\n', /^config: test\.yml line \d+, column \d+: /);
  fails(t, 'version: 0.1\nversion: 0.1\n', /^config: test\.yml line 2, column 1: Map keys must be unique$/);
  fails(t, '- a\n- b\n', /^config: test\.yml: expected a mapping at the top level$/);
});

t.test('accepted and ignored registry:2 keys', async (t) => {
  const c = parse(`version: "0.1"
log: {level: WARNING, formatter: logstash, accesslog: {disabled: true}, hooks: []}
loglevel: debug
storage:
  inmemory:
  cache: {blobdescriptor: redis}
  redirect: {disable: true}
  maintenance: {readonly: {enabled: false}}
http:
  addr: 127.0.0.1:5000
  net: tcp
  prefix: /
  http2: {disabled: false}
  debug: {addr: ":5001", prometheus: {enabled: true}}
  draintimeout: 60s
  headers: {X-One: single}
  host: "http://localhost:5000/"
notifications: {endpoints: []}
redis: {addr: "localhost:6379"}
validation: {disabled: true}
compatibility: {schema1: {enabled: false}}
reporting: {}
middleware: {registry: []}
health: {storagedriver: {enabled: true}}
`);
  t.equal(c.log.level, 'warn');
  t.same(c.storage.backend, { driver: 'inmemory' }, 'an empty inmemory: section counts');
  t.equal(c.metadata.path, ':memory:');
  t.same([c.http.host, c.http.port, c.http.externalUrl], ['127.0.0.1', 5000, 'http://localhost:5000']);
  t.same(c.http.headers, { 'X-One': ['single'] }, 'a single header value becomes a list');
  t.same(parse('storage: inmemory').storage.backend, { driver: 'inmemory' }, 'registry:2 bare driver name');
  t.same(parse('').upstreams, [], 'an empty file is all defaults, no upstream');
  t.equal(parse('metadata: {path: idx.db}').metadata.path, '/srv/stowage/idx.db', 'relative to cwd');
  t.equal(parse('storage: {filesystem: {rootdirectory: /r}}').metadata.path, '/r/stowage.sqlite');
});

t.test('loadConfig reads a file and reports an unreadable one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  writeFileSync(join(dir, 'c.yml'), 'http: {addr: "127.0.0.1:7000"}\nstorage: {inmemory: {}}\n');
  const c = loadConfig({ file: 'c.yml', cwd: dir });
  t.same([c.http.port, c.storage.backend.driver, c.metadata.path], [7000, 'inmemory', ':memory:']);
  t.throws(() => loadConfig({ file: 'missing.yml', cwd: dir }), ConfigError);
  t.throws(() => loadConfig({ file: 'missing.yml', cwd: dir }), /config: cannot read missing\.yml/);
  t.equal(loadConfig({ file: 'c.yml', cwd: dir, env: { REGISTRY_HTTP_ADDR: ':7001' } }).http.port, 7001, 'env applies to a file');
  t.equal(loadConfig({ cwd: dir, env: { REGISTRY_HTTP_ADDR: ':7002' } }).http.port, 7002, 'env applies to the defaults');
  writeFileSync(join(dir, 'bad.yml'), 'version: 0.1\nhttp:\n  addr: [\n');
  t.throws(() => loadConfig({ file: 'bad.yml', cwd: dir }), /^config: bad\.yml line \d+, column \d+: /);
});

t.test('prefetch: global defaults, per-upstream keys override one by one, env overrides', async (t) => {
  const base = `
version: 0.1
storage: {inmemory: {}}
proxy: {remoteurl: https://registry-1.docker.io}
upstreams:
  - {name: ghcr.io, url: https://ghcr.io, prefetch: {concurrency: 8}}
  - {name: quay.io, url: https://quay.io, prefetch: {enabled: false}}
`;
  const c = parse(base);
  const of = (name: string) => c.upstreams.find((u) => u.name === name)!.prefetching;
  t.same(of('docker.io'), { enabled: true, concurrency: 3, maxBytes: 2 * 1024 ** 3 }, 'the proxy: block takes the defaults');
  t.same(of('ghcr.io'), { enabled: true, concurrency: 8, maxBytes: 2 * 1024 ** 3 }, 'one key overridden, the rest global');
  t.same(of('quay.io'), { enabled: false, concurrency: 3, maxBytes: 2 * 1024 ** 3 }, 'off for one upstream');
  const off = parse(`${base}prefetch: {enabled: false, max_bytes: 100MiB}\n`);
  t.same(off.upstreams.map((u) => u.prefetching?.enabled), [false, false, false], 'global off, nobody overriding it');
  t.equal(off.upstreams[1]!.prefetching?.maxBytes, 100 * 1024 ** 2);
  t.equal(parse(base, { REGISTRY_PREFETCH_CONCURRENCY: '5' }).upstreams[0]!.prefetching?.concurrency, 5, 'environment override');
  fails(t, `${base}prefetch: {concurrency: 0}\n`, /concurrency/);
  t.equal(parse(base).cache, undefined, 'no cache: section, no pull hold needed');
  t.equal(parse(`${base}cache: {max_size: 1GiB}\n`).cache?.pull_hold, 60_000, 'pull_hold defaults to 1m');
});

t.test('ranges: global defaults, per-upstream keys override one by one, env overrides', async (t) => {
  const MiB = 1024 ** 2;
  const base = `
version: 0.1
storage: {inmemory: {}}
proxy: {remoteurl: https://registry-1.docker.io}
upstreams:
  - {name: ghcr.io, url: https://ghcr.io, ranges: {connections: 8}}
  - {name: quay.io, url: https://quay.io, ranges: {enabled: false}}
  - {name: lan.test, url: https://lan.test, ranges: {start_after: 0s}}
`;
  const c = parse(base);
  const of = (name: string) => c.upstreams.find((u) => u.name === name)!.ranging;
  t.same(of('docker.io'), { enabled: true, connections: 4, chunkSize: 8 * MiB, minSize: 32 * MiB, startAfterMs: 100 }, 'the proxy: block takes the defaults');
  t.same(of('ghcr.io'), { enabled: true, connections: 8, chunkSize: 8 * MiB, minSize: 32 * MiB, startAfterMs: 100 }, 'one key overridden, the rest global');
  t.same(of('quay.io'), { enabled: false, connections: 4, chunkSize: 8 * MiB, minSize: 32 * MiB, startAfterMs: 100 }, 'off for one upstream');
  t.equal(of('lan.test')?.startAfterMs, 0, 'start_after per upstream');
  t.equal(c.ranges.max_memory, 16 * MiB, 'max_memory: global, 16MiB by default');
  t.equal(c.ranges.spool_dir, undefined, 'spool_dir: unset by default (the storage root, or the temporary directory)');
  t.equal(parse(base, { REGISTRY_RANGES_SPOOL_DIR: '/var/spool/stowage' }).ranges.spool_dir, '/var/spool/stowage', 'spool_dir from the environment');
  const off = parse(`${base}ranges: {enabled: false, chunk_size: 4MiB}\n`);
  t.same(off.upstreams.map((u) => u.ranging?.enabled), [false, false, false, false], 'global off, nobody overriding it');
  t.equal(off.upstreams[1]!.ranging?.chunkSize, 4 * MiB);
  t.equal(parse(base, { REGISTRY_RANGES_CONNECTIONS: '2' }).upstreams[0]!.ranging?.connections, 2, 'environment override');
  fails(t, `${base}ranges: {connections: 0}\n`, /connections/);
  fails(t, `${base}ranges: {chunk_size: 1KiB}\n`, /chunk_size.*64KiB/);
});
