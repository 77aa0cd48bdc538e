/**
 * Blob redirects with real clients: stowage on the s3 driver (Swift's S3 API) with
 * storage.redirect enabled answers blob GETs with a 307 to a presigned URL; the Docker daemon,
 * podman and skopeo each pull an image by its loopback name (127.0.0.1:PORT/..., plain HTTP,
 * no mirror and no fallback to any outside registry) and must follow the redirect to the store.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { makeImage, pushImageHttp } from '../helpers/image.js';
import { missingStore, startObjectStore } from '../helpers/object-stores.js';
import { childEnv, startStowage } from '../helpers/procs.js';
import { skopeoCopy } from '../helpers/skopeo.js';
import { missingTools, sleep } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (dockerd)'
  : missingTools('dockerd', 'docker', 'podman', 'skopeo') ?? missingStore('s3');

const IMAGE = makeImage({ seed: 91, layers: 3, layerSize: 300_000 });

t.test('docker, podman and skopeo follow blob redirects to the object store', { skip, timeout: 600_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-redirect-clients-'));
  const procs: ChildProcess[] = [];
  const store = await startObjectStore('s3');
  t.teardown(async () => {
    for (const p of procs) {
      await new Promise<void>((r) => {
        if (p.exitCode !== null || p.signalCode !== null) return r();
        p.once('exit', () => r());
        p.kill('SIGTERM');
        setTimeout(() => p.kill('SIGKILL'), 8000).unref();
      });
    }
    await store.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const bucket = await store.bucket();
  const s = await startStowage({ storage: { ...bucket.section, redirect: { disable: false } } });
  t.teardown(() => s.stop());
  await pushImageHttp(s.url, 'redir/hello', 'v1', IMAGE);
  const ref = `127.0.0.1:${s.port}/redir/hello:v1`;
  const redirectedBlobGets = () => s.logs().filter((l) => l.redirected === true && l.status === 307).length;

  // dockerd on the host network: a pull by a 127.0.0.1 name talks to nothing else (loopback
  // registries are insecure by default, so plain HTTP), no bridge, no iptables.
  const sock = join(work, 'docker.sock');
  mkdirSync(join(work, 'exec'), { recursive: true });
  writeFileSync(join(work, 'daemon.json'), JSON.stringify({
    'storage-driver': 'vfs', iptables: false, 'ip-masq': false, bridge: 'none',
    'data-root': join(work, 'data'), 'exec-root': join(work, 'exec'), pidfile: join(work, 'docker.pid'), hosts: [`unix://${sock}`],
  }));
  const chunks: Buffer[] = [];
  const dockerd = spawn('dockerd', ['--config-file', join(work, 'daemon.json')], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  dockerd.stdout?.on('data', (d: Buffer) => chunks.push(d));
  dockerd.stderr?.on('data', (d: Buffer) => chunks.push(d));
  procs.push(dockerd);
  const docker = (...args: string[]) => execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  const end = Date.now() + 60_000;
  for (;;) {
    try { docker('version'); break; } catch {
      if (Date.now() > end) throw new Error(`dockerd did not start: ${Buffer.concat(chunks).toString().slice(-2000)}`);
      await sleep(300);
    }
  }

  let before = redirectedBlobGets();
  docker('pull', ref);
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', ref), IMAGE.manifest.digest, 'docker pulled the image');
  await sleep(300);
  t.ok(redirectedBlobGets() - before >= IMAGE.layers.length, `docker followed ${redirectedBlobGets() - before} redirects to the store`);

  before = redirectedBlobGets();
  const podman = (...args: string[]) => execFileSync('podman', ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs', ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  podman('pull', '-q', '--tls-verify=false', ref);
  t.match(podman('images', '--digests', '--format', '{{.Digest}}'), IMAGE.manifest.digest, 'podman pulled the image');
  await sleep(300);
  t.ok(redirectedBlobGets() - before >= IMAGE.layers.length, `podman followed ${redirectedBlobGets() - before} redirects to the store`);

  before = redirectedBlobGets();
  await skopeoCopy(`docker://${ref}`, `oci:${join(work, 'oci')}:v1`);
  await sleep(300);
  t.ok(redirectedBlobGets() - before >= IMAGE.layers.length + 1, `skopeo followed ${redirectedBlobGets() - before} redirects to the store`);
  t.notOk(s.output().includes(bucket.secret), 'the store\'s secret is not in stowage\'s log');
});
