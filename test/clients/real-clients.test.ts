/**
 * The clients users actually configure, for real: the Docker daemon with registry-mirrors,
 * containerd (ctr) with a hosts.toml mirror (it adds ?ns=docker.io), and podman with a
 * registries.conf mirror. Each pulls an image that lives only on the upstream registry:2, through
 * stowage; then the upstream is stopped and each pulls again. Everything runs inside a network
 * namespace that has only a loopback interface, so nothing can leave the machine, whatever a
 * client falls back to.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { makeImage, writeOciLayout } from '../helpers/image.js';
import { childEnv } from '../helpers/procs.js';
import { missingTools, sleep, stopChild, until } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (network namespace, dockerd, containerd)'
  : missingTools('ip', 'nsenter', 'dockerd', 'docker', 'containerd', 'ctr', 'podman', 'docker-registry', 'skopeo', 'curl');

const CLI = resolve(import.meta.dirname, '../../dist/cli.js');
const NS = `stowage-clients-${process.pid}`;
const IMAGE = makeImage({ seed: 77, layers: 2, layerSize: 200_000 });

// nsenter joins only the network namespace (`ip netns exec` would also remount /sys, hiding the
// cgroup mounts dockerd needs).
const NSENTER = ['--net=/run/netns/' + NS, '--'];
const inNs = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  execFileSync('nsenter', [...NSENTER, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, timeout: 180_000 });

function daemon(name: string, cmd: string, args: string[], logFile: string): ChildProcess {
  const p = spawn('nsenter', [...NSENTER, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  const chunks: Buffer[] = [];
  p.stdout?.on('data', (d: Buffer) => chunks.push(d));
  p.stderr?.on('data', (d: Buffer) => chunks.push(d));
  p.on('exit', () => writeFileSync(logFile, Buffer.concat(chunks)));
  (p as ChildProcess & { output: () => string }).output = () => Buffer.concat(chunks).toString();
  return p;
}
const output = (p: ChildProcess) => (p as ChildProcess & { output: () => string }).output();

const httpUp = (url: string) => () => { try { inNs('curl', ['-sf', '-o', '/dev/null', url]); return true; } catch { return false; } };


t.test('docker, containerd and podman pull through stowage', { skip, timeout: 600_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-clients-'));
  execFileSync('ip', ['netns', 'add', NS]);
  const procs: ChildProcess[] = [];
  t.teardown(async () => {
    for (const p of procs.reverse()) await stopChild(p);
    try { execFileSync('ip', ['netns', 'del', NS]); } catch { /* already gone */ }
    rmSync(work, { recursive: true, force: true });
  });
  inNs('ip', ['link', 'set', 'lo', 'up']);
  const links = inNs('ip', ['-o', 'link']).trim().split('\n');
  t.same(links.map((l) => l.split(':')[1]!.trim()), ['lo'], 'the namespace has loopback only');

  // upstream registry:2 holding the image, stowage in front of it as the docker.io mirror
  const layout = join(work, 'layout');
  await writeOciLayout(layout, { latest: IMAGE });
  writeFileSync(join(work, 'r2.yml'), `version: 0.1\nlog: {level: info, formatter: text}\nstorage: {filesystem: {rootdirectory: ${work}/r2}}\nhttp: {addr: 127.0.0.1:5001}\n`);
  const r2 = daemon('registry:2', 'docker-registry', ['serve', join(work, 'r2.yml')], join(work, 'r2.log'));
  procs.push(r2);
  await until('registry:2', httpUp('http://127.0.0.1:5001/v2/'), 20_000, () => output(r2));
  inNs('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}:latest`, 'docker://127.0.0.1:5001/library/hello:latest']);
  writeFileSync(join(work, 'stowage.yml'), `version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: ${work}/stowage}}
http: {addr: 127.0.0.1:5000}
upstreams:
  - {name: docker.io, url: "http://127.0.0.1:5001", tag_ttl: 1s, revalidate_timeout: 1s, circuit_breaker: {failures: 2, cooldown: 1m}}
default_upstream: docker.io
`);
  const stowage = daemon('stowage', process.execPath, [CLI, 'serve', join(work, 'stowage.yml')], join(work, 'stowage.log'));
  procs.push(stowage);
  await until('stowage', httpUp('http://127.0.0.1:5000/v2/'), 20_000, () => output(stowage));
  const stowageRequests = (part: string) => output(stowage).split('\n').filter((l) => l.includes('"msg":"request"') && l.includes(part));

  // Docker daemon with registry-mirrors
  const dockerSock = join(work, 'docker.sock');
  mkdirSync(join(work, 'docker-exec'), { recursive: true });
  writeFileSync(join(work, 'daemon.json'), JSON.stringify({
    'registry-mirrors': ['http://127.0.0.1:5000'], 'storage-driver': 'vfs', iptables: false, 'ip-masq': false, bridge: 'none',
    'data-root': join(work, 'docker-data'), 'exec-root': join(work, 'docker-exec'), pidfile: join(work, 'docker.pid'),
    hosts: [`unix://${dockerSock}`],
  }));
  const dockerd = daemon('dockerd', 'dockerd', ['--config-file', join(work, 'daemon.json')], join(work, 'dockerd.log'));
  procs.push(dockerd);
  const docker = (...args: string[]) => inNs('docker', ['-H', `unix://${dockerSock}`, ...args]);
  await until('dockerd', () => { try { docker('version'); return true; } catch { return false; } }, 60_000, () => output(dockerd));

  // containerd with its own root, state and socket
  const ctrSock = join(work, 'containerd.sock');
  writeFileSync(join(work, 'containerd.toml'), `version = 2
root = "${work}/containerd-root"
state = "${work}/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${ctrSock}"
`);
  const containerd = daemon('containerd', 'containerd', ['--config', join(work, 'containerd.toml')], join(work, 'containerd.log'));
  procs.push(containerd);
  const ctr = (...args: string[]) => inNs('ctr', ['-a', ctrSock, ...args]);
  await until('containerd', () => { try { ctr('version'); return true; } catch { return false; } }, 30_000, () => output(containerd));
  const hostsDir = join(work, 'certs.d');
  mkdirSync(join(hostsDir, 'docker.io'), { recursive: true });
  writeFileSync(join(hostsDir, 'docker.io', 'hosts.toml'), `server = "https://registry-1.docker.io"\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n`);

  // podman with a registries.conf mirror
  const regConf = join(work, 'registries.conf');
  writeFileSync(regConf, `unqualified-search-registries = ["docker.io"]\n[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "127.0.0.1:5000"\ninsecure = true\n`);
  const podman = (...args: string[]) => inNs('podman', ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs', ...args],
    { CONTAINERS_REGISTRIES_CONF: regConf });

  for (const round of ['upstream up', 'upstream stopped'] as const) {
    if (round === 'upstream stopped') {
      await stopChild(r2);
      t.notOk(httpUp('http://127.0.0.1:5001/v2/')(), 'the upstream is down');
      docker('rmi', '-f', 'library/hello:latest');
      podman('rmi', '-f', 'docker.io/library/hello:latest');
      await sleep(1100); // past the tag TTL: the next answers are stale ones
    }
    const ns = round === 'upstream up' ? 'default' : 'second';
    docker('pull', 'library/hello:latest');
    const repoDigests = docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'library/hello:latest');
    t.match(repoDigests, IMAGE.manifest.digest, `${round}: docker pulled the upstream image (${repoDigests.trim()})`);
    ctr('-n', ns, 'images', 'pull', '--hosts-dir', hostsDir, 'docker.io/library/hello:latest');
    t.match(ctr('-n', ns, 'images', 'ls', '-q'), 'docker.io/library/hello:latest', `${round}: containerd pulled it`);
    podman('pull', '-q', 'docker.io/library/hello:latest');
    t.match(podman('images', '--digests', '--format', '{{.Digest}}'), IMAGE.manifest.digest, `${round}: podman pulled it`);
  }
  await sleep(500); // stowage's log lines travel through a pipe
  t.ok(stowageRequests('ns=docker.io').length > 0, 'containerd went through stowage with ?ns=docker.io');
  if (process.env.DEBUG_CLIENTS) console.error(stowageRequests('').join('\n'));
  t.ok(stowageRequests('/v2/library/hello/manifests/').length >= 6, 'every client asked stowage for the manifest');
  t.ok(stowageRequests('"cache":"stale"').length > 0, 'with the upstream stopped, the tag was served stale');
  const upstreamBlobGets = output(r2).split('\n').filter((l) => /"GET \/v2\/library\/hello\/blobs\/sha256:\w+ HTTP/.test(l)).length;
  t.equal(upstreamBlobGets, 3, 'three clients, two pulls each: the upstream sent each of the 3 blobs once');
});
