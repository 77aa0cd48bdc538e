/** upstreams[].mirrors in the configuration: what a good entry becomes, and one-line errors for bad ones. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const parse = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseConfig(yaml, env, 'test.yml', '/srv/stowage');
const withMirrors = (mirrors: string) => `upstreams: [{name: docker.io, url: "https://registry-1.docker.io", mirrors: ${mirrors}}]`;
const fails = (t: Test, yaml: string, pattern: RegExp) => {
  try {
    parse(yaml);
    t.fail(`expected a ConfigError matching ${pattern}`);
  } catch (e) {
    t.ok(e instanceof ConfigError, 'a ConfigError');
    t.match((e as Error).message, pattern);
    t.notMatch((e as Error).message, /\n/, 'one line');
  }
};

t.test('a mirror entry, decoded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mirror-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'pw'), 'from-file\n');
  const c = parse(withMirrors(`[
    {url: "http://site-cache.local:5000", username: site, password: s3cret, timeout: 2s},
    {url: "https://regional.example.com", username: dmz, password_file: ${join(dir, 'pw')}, timeout: {connect: 1s}, circuit_breaker: {failures: 5, cooldown: 1m}, max_concurrent: 4}
  ]`));
  const u = c.upstreams[0]!;
  t.equal(u.username, undefined, "the upstream has no credentials of its mirrors'");
  t.same(u.mirrors, [
    { name: 'docker.io@site-cache.local:5000', url: 'http://site-cache.local:5000', username: 'site', password: 's3cret',
      connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000, maxConcurrent: 16, breakerFailures: 1, breakerCooldownMs: 10_000 },
    { name: 'docker.io@regional.example.com', url: 'https://regional.example.com', username: 'dmz', password: 'from-file',
      connectTimeoutMs: 1000, headersTimeoutMs: 3_000, bodyTimeoutMs: 30_000, maxConcurrent: 4, breakerFailures: 5, breakerCooldownMs: 60_000 },
  ]);
  t.same(parse('upstreams: [{name: ghcr.io, url: "https://ghcr.io"}]').upstreams[0]!.mirrors, [], 'none unless configured');
  const env = parse('upstreams: [{name: ghcr.io, url: "https://ghcr.io"}]', { REGISTRY_UPSTREAMS_0_MIRRORS: '[{url: "http://m.local:5000"}]' });
  t.same(env.upstreams[0]!.mirrors!.map((m) => m.name), ['ghcr.io@m.local:5000'], 'from REGISTRY_UPSTREAMS_0_MIRRORS');
});

t.test('bad mirror entries stop start-up with one line naming the key', async (t) => {
  fails(t, withMirrors('[{username: x}]'), /^config: upstreams\[0\]\.mirrors\[0\]\.url: required$/);
  fails(t, withMirrors('[{url: "ftp://m.local"}]'), /upstreams\[0\]\.mirrors\[0\]\.url: expected an http:\/\/ or https:\/\/ URL/);
  fails(t, withMirrors('[{url: "http://m.local/v2"}]'), /upstreams\[0\]\.mirrors\[0\]\.url: expected a URL without path/);
  fails(t, withMirrors('[{url: "https://registry-1.docker.io"}]'), /upstreams\[0\]\.mirrors\[0\]\.url: "https:\/\/registry-1\.docker\.io" is the upstream's own url/);
  fails(t, withMirrors('[{url: "http://m.local"}, {url: "http://M.local/"}]'), /upstreams\[0\]\.mirrors\[1\]\.url: "http:\/\/m\.local" is listed twice/);
  fails(t, withMirrors('[{url: "http://m.local", password: a, password_file: /etc/pw}]'), /upstreams\[0\]\.mirrors\[0\]\.password_file: give password or password_file, not both/);
  fails(t, withMirrors('[{url: "http://m.local", password_file: /nonexistent/pw}]'), /upstreams\[0\]\.mirrors\[0\]\.password_file: cannot read \/nonexistent\/pw/);
  fails(t, withMirrors('[{url: "http://m.local", tag_ttl: 1m}]'), /upstreams\[0\]\.mirrors\[0\]\.tag_ttl: unknown key/);
  fails(t, withMirrors('[{url: "http://m.local", timeout: soon}]'), /upstreams\[0\]\.mirrors\[0\]\.timeout: expected a duration or \{connect, headers, body\}/);
  fails(t, withMirrors('[{url: "http://m.local", circuit_breaker: {failures: 0}}]'), /upstreams\[0\]\.mirrors\[0\]\.circuit_breaker\.failures: /);
  fails(t, withMirrors('{url: "http://m.local"}'), /upstreams\[0\]\.mirrors: expected a list/);
  fails(t, 'proxy: {remoteurl: "https://quay.io", mirrors: []}', /proxy\.mirrors: unknown key/);
});
