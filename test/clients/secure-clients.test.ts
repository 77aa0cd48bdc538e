/**
 * The Docker daemon against stowage over verified TLS with htpasswd and access rules, inside a
 * network namespace that has only loopback (as test/clients/real-clients.test.ts runs it).
 *
 * Docker treats every 127.0.0.0/8 registry as insecure and then skips certificate checks, so
 * stowage listens on [::1] under the name stowage.test: dockerd runs in a mount namespace of its
 * own whose /etc/hosts maps stowage.test (and stowage-noca.test) to ::1 and whose /etc/docker
 * holds certs.d/stowage.test:<port>/ca.crt, the test CA made with openssl. Nothing on the host
 * changes. docker login (wrong password, then right), push to the user's team repository, pull
 * back, another user refused, an anonymous pull of cached content allowed by a rule while an
 * anonymous push is refused, a registry whose CA docker does not have refused.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { issueServer, makeCa } from '../helpers/certs.js';
import { makeImage, writeOciLayout } from '../helpers/image.js';
import { childEnv } from '../helpers/procs.js';
import { missingTools, sleep, stopChild, until } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (network and mount namespaces, dockerd)'
  : missingTools('ip', 'nsenter', 'unshare', 'mount', 'dockerd', 'docker', 'docker-registry', 'skopeo', 'curl', 'openssl', 'htpasswd');

const CLI = resolve(import.meta.dirname, '../../dist/cli.js');
const NS = `stowage-secure-${process.pid}`;
const PORT = 5443;
const HOST = `stowage.test:${PORT}`;
const NOCA_HOST = `stowage-noca.test:${PORT}`;
const IMAGE = makeImage({ seed: 931, layers: 2, layerSize: 150_000 });
const PASSWORDS = { alice: 'alice-docker-pw-1', bob: 'bob-docker-pw-2' };

const NSENTER = ['--net=/run/netns/' + NS, '--'];
const inNs = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  execFileSync('nsenter', [...NSENTER, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, timeout: 180_000 });
/** Like inNs, but a failure returns its output instead of throwing. */
const tryInNs = (cmd: string, args: string[]): { ok: boolean; output: string } => {
  try {
    return { ok: true, output: inNs(cmd, args) };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${err.stdout ?? ''}${err.stderr ?? err.message}` };
  }
};

function daemon(cmd: string, args: string[], logFile: string, wrap: string[] = []): ChildProcess {
  const p = spawn('nsenter', [...NSENTER, ...wrap, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  const chunks: Buffer[] = [];
  p.stdout?.on('data', (d: Buffer) => chunks.push(d));
  p.stderr?.on('data', (d: Buffer) => chunks.push(d));
  p.on('exit', () => writeFileSync(logFile, Buffer.concat(chunks)));
  (p as ChildProcess & { output: () => string }).output = () => Buffer.concat(chunks).toString();
  return p;
}
const output = (p: ChildProcess) => (p as ChildProcess & { output: () => string }).output();



t.test('docker login, push and pull over verified TLS with htpasswd and access rules', { skip, timeout: 600_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-secure-clients-'));
  execFileSync('ip', ['netns', 'add', NS]);
  const procs: ChildProcess[] = [];
  t.teardown(async () => {
    for (const p of procs.reverse()) await stopChild(p);
    try { execFileSync('ip', ['netns', 'del', NS]); } catch { /* already gone */ }
    rmSync(work, { recursive: true, force: true });
  });
  inNs('ip', ['link', 'set', 'lo', 'up']);
  t.same(inNs('ip', ['-o', 'link']).trim().split('\n').map((l) => l.split(':')[1]!.trim()), ['lo'], 'the namespace has loopback only');
  t.match(inNs('ip', ['-o', 'addr', 'show', 'lo']), /inet6 ::1\//, 'with ::1');

  // Certificates, users, and the files dockerd's own mount namespace will see.
  const ca = makeCa();
  const server = issueServer(ca, 'server', ['stowage.test', 'stowage-noca.test']);
  const htpasswd = join(work, 'htpasswd');
  execFileSync('htpasswd', ['-B', '-b', '-c', '-C', '5', htpasswd, 'alice', PASSWORDS.alice], { stdio: 'ignore' });
  execFileSync('htpasswd', ['-B', '-b', '-C', '5', htpasswd, 'bob', PASSWORDS.bob], { stdio: 'ignore' });
  const etcDocker = join(work, 'etc-docker');
  mkdirSync(join(etcDocker, 'certs.d', HOST), { recursive: true });
  copyFileSync(ca.cert, join(etcDocker, 'certs.d', HOST, 'ca.crt'));
  writeFileSync(join(work, 'hosts'), `127.0.0.1 localhost\n::1 stowage.test stowage-noca.test\n`);
  const privateMounts = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
    `mount --bind ${join(work, 'hosts')} /etc/hosts && mount --bind ${etcDocker} /etc/docker && exec "$@"`, 'sh'];

  // The docker.io upstream (registry:2) holding an image, then stowage in front of it.
  const layout = join(work, 'layout');
  await writeOciLayout(layout, { latest: IMAGE });
  writeFileSync(join(work, 'r2.yml'), `version: 0.1\nlog: {level: info, formatter: text}\nstorage: {filesystem: {rootdirectory: ${work}/r2}}\nhttp: {addr: 127.0.0.1:5001}\n`);
  const r2 = daemon('docker-registry', ['serve', join(work, 'r2.yml')], join(work, 'r2.log'));
  procs.push(r2);
  await until('registry:2', () => tryInNs('curl', ['-sf', '-o', '/dev/null', 'http://127.0.0.1:5001/v2/']).ok, 20_000, () => output(r2));
  inNs('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}:latest`, 'docker://127.0.0.1:5001/library/hello:latest']);
  writeFileSync(join(work, 'stowage.yml'), `version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: ${work}/stowage}}
http:
  addr: "[::1]:${PORT}"
  tls: {certificate: ${server.cert}, key: ${server.key}}
auth:
  htpasswd: {realm: stowage, path: ${htpasswd}}
upstreams:
  - {name: docker.io, url: "http://127.0.0.1:5001"}
default_upstream: docker.io
access:
  - {repository: "docker.io/**", pull: [anonymous]}
  - {repository: "team-a/**", pull: [alice], push: [alice]}
  - {repository: "**", pull: [authenticated]}
`);
  const stowage = daemon(process.execPath, [CLI, 'serve', join(work, 'stowage.yml')], join(work, 'stowage.log'));
  procs.push(stowage);
  await until('stowage', () => tryInNs('curl', ['-s', '-o', '/dev/null', '--cacert', ca.cert, '--resolve', `stowage.test:${PORT}:[::1]`, `https://${HOST}/v2/`]).ok, 20_000, () => output(stowage));

  // dockerd, in its private mount namespace.
  const dockerSock = join(work, 'docker.sock');
  mkdirSync(join(work, 'docker-exec'), { recursive: true });
  writeFileSync(join(work, 'daemon.json'), JSON.stringify({
    'registry-mirrors': [`https://${HOST}`], 'storage-driver': 'vfs', iptables: false, 'ip-masq': false, bridge: 'none', 'data-root': join(work, 'docker-data'),
    'exec-root': join(work, 'docker-exec'), pidfile: join(work, 'docker.pid'), hosts: [`unix://${dockerSock}`],
  }));
  const dockerd = daemon('dockerd', ['--config-file', join(work, 'daemon.json')], join(work, 'dockerd.log'), privateMounts);
  procs.push(dockerd);
  const dockerConfig = join(work, 'docker-cli');
  mkdirSync(dockerConfig);
  const docker = (...args: string[]) => tryInNs('docker', ['--config', dockerConfig, '-H', `unix://${dockerSock}`, ...args]);
  await until('dockerd', () => docker('version').ok, 60_000, () => output(dockerd));

  const wrong = docker('login', HOST, '-u', 'alice', '-p', 'not-her-password');
  t.notOk(wrong.ok, 'docker login with a wrong password fails');
  t.match(wrong.output, /unauthorized|401/i, wrong.output.trim().slice(-200));
  const login = docker('login', HOST, '-u', 'alice', '-p', PASSWORDS.alice);
  t.ok(login.ok, `docker login over TLS verified with certs.d (${login.output.trim().slice(-120)})`);
  t.match(login.output, /Login Succeeded/);

  const cached = docker('pull', `${HOST}/library/hello:latest`);
  t.ok(cached.ok, `docker pulls a cached docker.io image through stowage (${cached.output.trim().slice(-200)})`);
  t.ok(docker('tag', `${HOST}/library/hello:latest`, `${HOST}/team-a/app:1.0`).ok);
  const push = docker('push', `${HOST}/team-a/app:1.0`);
  t.ok(push.ok, `alice pushes team-a/app (${push.output.trim().slice(-200)})`);
  t.ok(docker('rmi', `${HOST}/team-a/app:1.0`).ok);
  const pull = docker('pull', `${HOST}/team-a/app:1.0`);
  t.ok(pull.ok, `and pulls it back (${pull.output.trim().slice(-200)})`);
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', `${HOST}/team-a/app:1.0`).output, /team-a\/app@sha256:/);

  t.ok(docker('logout', HOST).ok);
  t.ok(docker('login', HOST, '-u', 'bob', '-p', PASSWORDS.bob).ok, 'bob logs in');
  t.ok(docker('tag', `${HOST}/library/hello:latest`, `${HOST}/team-a/app:bob`).ok);
  const refused = docker('push', `${HOST}/team-a/app:bob`);
  t.notOk(refused.ok, 'bob may not push into team-a');
  t.match(refused.output, /denied|forbidden/i, refused.output.trim().slice(-200));
  const bobPull = docker('pull', `${HOST}/team-a/app:1.0`);
  t.notOk(bobPull.ok, 'nor pull from it');

  // Anonymous: the rules let anyone pull docker.io/**, and stowage's Bearer challenge (its own
  // tokens) lets Docker take them up on it without a login; a push still needs one.
  t.ok(docker('logout', HOST).ok);
  docker('rmi', '-f', `${HOST}/library/hello:latest`);
  const anonymous = docker('pull', `${HOST}/library/hello:latest`);
  t.ok(anonymous.ok, `without a login docker pulls a cached image the rules give anonymous (${anonymous.output.trim().slice(-160)})`);
  const mirrored = docker('pull', 'library/hello:latest');
  t.ok(mirrored.ok, `and the Docker daemon's registry-mirrors pull through stowage anonymously (${mirrored.output.trim().slice(-120)})`);
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'hello:latest').output, IMAGE.manifest.digest, 'the upstream image');
  const anonymousPush = docker('push', `${HOST}/team-a/app:1.0`);
  t.notOk(anonymousPush.ok, 'an anonymous push is refused');
  t.match(anonymousPush.output, /unauthorized|authentication required/i, anonymousPush.output.trim().slice(-160));

  const noCa = docker('pull', `${NOCA_HOST}/library/hello:latest`);
  t.notOk(noCa.ok, 'a registry name without a CA in certs.d is not trusted');
  t.match(noCa.output, /x509|certificate/i, noCa.output.trim().slice(-200));

  await sleep(500); // stowage's log lines travel through a pipe
  const lines = output(stowage).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(lines.some((l) => l.msg === 'authentication failed' && l.user === 'alice'), 'the wrong password was logged with the user');
  t.ok(lines.some((l) => l.msg === 'request' && l.user === 'alice' && l.method === 'PUT' && String(l.url).includes('/team-a/app/manifests/1.0') && l.status === 201),
    'the push is in the request log with the user');
  t.notOk(output(stowage).includes(PASSWORDS.alice) || output(stowage).includes(PASSWORDS.bob), 'no password in the logs');
});
