/**
 * deploy/: the systemd unit and the compose file. systemd is not PID 1 on these machines, so the
 * unit cannot be started here: systemd's own tools check it (`systemd-analyze verify`, and
 * `systemd-analyze security --offline` for the sandbox's exposure), and its command line runs as
 * an unprivileged user against deploy/stowage.yml, stopping with SIGTERM within TimeoutStopSec.
 * The compose file is validated by docker-compose here and run for real by
 * test/container/image.test.ts.
 */
import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { run } from '../helpers/image-dockerd.js';
import { childEnv } from '../helpers/procs.js';
import { asUser, checkoutReadableBy } from '../helpers/unprivileged.js';
import { freePort, missingTools, waitForHttp } from '../helpers/tools.js';
import { parseConfig } from '../../src/config/load.js';
import { parseGoDuration } from '../../src/config/duration.js';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const UNIT = join(REPO_ROOT, 'deploy/stowage.service');
const COMPOSE = join(REPO_ROOT, 'deploy/compose.yaml');
/** http.draintimeout's default, from the schema. */
const DEFAULT_DRAIN_MS = parseConfig('storage: inmemory', {}, 'defaults', REPO_ROOT).http.draintimeout;

/** [Service] settings of the unit, each key with all its values in order. */
function serviceSettings(): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = '';
  for (const raw of readFileSync(UNIT, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) section = line;
    else if (section === '[Service]' && line && !line.startsWith('#')) {
      const i = line.indexOf('=');
      settings.set(line.slice(0, i), [...(settings.get(line.slice(0, i)) ?? []), line.slice(i + 1)]);
    }
  }
  return settings;
}

t.test('the systemd unit passes systemd-analyze', { skip: missingTools('systemd-analyze') }, async (t) => {
  const verify = await run('systemd-analyze', ['verify', UNIT]);
  t.equal(verify.code, 0, 'systemd-analyze verify exits 0');
  t.equal(verify.stderr.trim() + verify.stdout.trim(), '', 'with no warnings');
  const security = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT]);
  const exposure = /Overall exposure level for [^:]+: ([\d.]+)/.exec(security.stdout);
  t.ok(exposure, 'systemd-analyze security rates the unit');
  t.comment(`systemd-analyze security: exposure ${exposure?.[1]} (0 = locked down, 10 = unprotected)`);
  t.ok(Number(exposure?.[1]) <= 1.5, 'exposure 1.5 or lower ("OK")');
});

t.test('npm start, the image and the unit run node with the same flags', async (t) => {
  const start = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start ?? '';
  const image = /^ENTRYPOINT \[(.*)\]$/m.exec(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'))?.[1] ?? '';
  const unit = serviceSettings().get('ExecStart')?.[0] ?? '';
  /** The words between node and the script: node's own flags. */
  const flags = (words: string[]) => words.slice(1, words.findIndex((w) => w.endsWith('dist/cli.js'))).join(' ');
  const fromStart = flags(start.split(/\s+/));
  t.match(start, /^node (\S+ )*dist\/cli\.js serve /, 'npm start runs node on dist/cli.js');
  t.equal(flags((JSON.parse(`[${image}]`) as string[])), fromStart, 'the image passes node the flags npm start does');
  t.equal(flags(unit.split(/\s+/)), fromStart, 'the systemd unit passes node the flags npm start does');
  t.notMatch(`${start} ${image} ${unit}`, /--max-old-space-size/, 'no heap limit (it cost CPU on the cold path: README, Memory)');
});

t.test('the unit runs node directly, hardened, with time to drain', async (t) => {
  const s = serviceSettings();
  const exec = s.get('ExecStart')?.[0] ?? '';
  t.match(exec, /^\/usr\/bin\/node (\S+ )*\/opt\/stowage\/dist\/cli\.js serve /, 'ExecStart runs node on dist/cli.js');
  t.notMatch(exec, /\bnpm\b/, 'not through npm');
  for (const [key, value] of [['DynamicUser', 'yes'], ['ProtectSystem', 'strict'], ['StateDirectory', 'stowage'], ['NoNewPrivileges', 'yes'], ['PrivateTmp', 'yes'], ['ProtectHome', 'yes'], ['CapabilityBoundingSet', '']]) {
    t.same(s.get(key!), [value], `${key}=${value}`);
  }
  t.ok(parseGoDuration(s.get('TimeoutStopSec')![0]!) > DEFAULT_DRAIN_MS, 'TimeoutStopSec is longer than the default drain time');
  const config = parse(readFileSync(join(REPO_ROOT, 'deploy/stowage.yml'), 'utf8')) as { storage: { filesystem: { rootdirectory: string } } };
  t.equal(config.storage.filesystem.rootdirectory, '/var/lib/stowage', 'deploy/stowage.yml keeps data in the StateDirectory');
});

t.test('the unit\'s command line, as an unprivileged user, serves and stops on SIGTERM', { skip: process.getuid?.() === 0 ? missingTools('setpriv') : 'needs root (setpriv)' }, async (t) => {
  const uid = 61234; // like a DynamicUser: no home, no groups, owns only the state directory
  const state = mkdtempSync(join(tmpdir(), 'stowage-state-'));
  chownSync(state, uid, uid);
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const port = await freePort();
  const [node, ...rest] = serviceSettings().get('ExecStart')![0]!.split(' ');
  const checkout = checkoutReadableBy(uid);
  const argv = rest.map((a) => a.replace('/opt/stowage', checkout).replace('/etc/stowage/config.yml', join(checkout, 'deploy/stowage.yml')));
  const proc = spawn('setpriv', [...asUser(uid, '--no-new-privs'), node!, ...argv], {
    env: childEnv({ REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: state, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` }), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  t.teardown(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  await waitForHttp(`http://127.0.0.1:${port}/v2/`, 20_000, () => output, () => proc.exitCode !== null);
  const res = await fetch(`http://127.0.0.1:${port}/v2/`);
  t.equal(res.status, 200, 'serves /v2/');
  t.equal(statSync(join(state, 'stowage.sqlite')).uid, uid, 'its index belongs to the service user');
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: exit 0');
});

t.test('docker-compose accepts deploy/compose.yaml', { skip: missingTools('docker-compose') }, async (t) => {
  const r = await run('docker-compose', ['-f', COMPOSE, 'config', '-q']);
  t.equal(r.code, 0, `docker-compose config: ${r.stderr.trim() || 'valid'}`);
  const compose = parse(readFileSync(COMPOSE, 'utf8')) as { services: { registry: Record<string, unknown> } };
  const svc = compose.services.registry;
  t.ok(parseGoDuration(String(svc.stop_grace_period)) > DEFAULT_DRAIN_MS, 'stop_grace_period is longer than the default drain time');
  t.match(svc.volumes, [/:\/var\/lib\/registry$/], 'data in a volume at registry:2\'s path');
  t.equal(svc.read_only, true, 'read-only root file system');
  t.notOk('command' in svc || 'entrypoint' in svc, 'runs the image\'s own entrypoint (node, not npm)');
});
