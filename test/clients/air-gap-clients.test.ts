/**
 * Across the air gap with the clients users have, inside a network namespace with only loopback
 * (test/helpers/netns.ts): a bundle exported from a connected stowage is imported into a stowage
 * whose upstream is Docker Hub's real address (unreachable here); then the Docker daemon
 * (registry-mirrors), podman (a registries.conf mirror) and skopeo pull every image from it, with
 * the digests the upstream had, and nothing is fetched from anywhere.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { makeImage, makeIndex, pushImageHttp, sha256 } from '../helpers/image.js';
import { interfaces, isolate } from '../helpers/netns.js';
import { runCli, startRegistry2, startStowage, writeStowageConfig, type Proc } from '../helpers/procs.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { missingTools } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (network namespace, dockerd)'
  : missingTools('ip', 'nsenter', 'dockerd', 'docker', 'podman', 'docker-registry', 'skopeo');
isolate(skip);
const { default: t } = await import('tap');

const ALPINE = makeIndex([
  makeImage({ seed: 51, layers: 2, layerSize: 150_000, platform: { architecture: 'amd64', os: 'linux' } }),
  makeImage({ seed: 52, layers: 2, layerSize: 150_000, platform: { architecture: 'arm64', os: 'linux' } }),
]);
const TOOL = makeImage({ seed: 53, layers: 3, layerSize: 100_000 });
const APP = makeImage({ seed: 54, layers: 1, layerSize: 100_000 });

t.test('dockerd, podman and skopeo pull imported images from an isolated stowage', { skip, timeout: 600_000 }, async (t) => {
  t.same(interfaces(), ['lo'], 'the namespace has loopback only');
  const work = mkdtempSync(join(tmpdir(), 'stowage-airgap-clients-'));
  const procs: Proc[] = [];
  let dockerd: Dockerd | undefined;
  t.teardown(async () => {
    await dockerd?.stop();
    for (const p of procs) await p.stop();
    rmSync(work, { recursive: true, force: true });
  });
  // The connected side.
  const upstream = await startRegistry2();
  procs.push(upstream);
  const connected = await startStowage({ config: { upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io' } });
  procs.push(connected);
  await pushImageHttp(upstream.url, 'library/alpine', '3.20', ALPINE);
  await pushImageHttp(upstream.url, 'library/tool', '1', TOOL);
  await pushImageHttp(connected.url, 'team/app', '1.0', APP);
  const bundle = join(work, 'bundle.tar');
  const exported = await runCli(['export', '--config', connected.configFile!, '-o', bundle, 'alpine:3.20', 'tool:1', 'team/app:1.0']);
  t.equal(exported.code, 0, exported.stderr);

  // The isolated side: its upstream is Docker Hub's real address, which leads nowhere here.
  const isolatedConfig = { upstreams: [{ name: 'docker.io', url: 'https://registry-1.docker.io' }], default_upstream: 'docker.io' };
  const target = await writeStowageConfig({ config: isolatedConfig });
  const imported = await runCli(['import', '--config', target.file, bundle]);
  t.equal(imported.code, 0, imported.stderr);
  t.match(imported.stdout, /docker\.io\/library\/alpine:3\.20\s+\S+\s+cached\s+imported/);
  const isolated = await startStowage({ rootDir: target.rootDir, port: target.port, config: isolatedConfig });
  procs.push(isolated);
  const host = `127.0.0.1:${isolated.port}`;

  dockerd = await startDockerd(work, { 'registry-mirrors': [`http://${host}`], 'insecure-registries': [host] });
  const { docker } = dockerd;
  docker('pull', 'library/alpine:3.20');
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'library/alpine:3.20'), ALPINE.digest, 'docker (registry-mirrors): alpine');
  docker('pull', 'library/tool:1');
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'library/tool:1'), TOOL.manifest.digest, 'docker: tool');
  docker('pull', `${host}/team/app:1.0`);
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', `${host}/team/app:1.0`), APP.manifest.digest, 'docker: the pushed image');

  const conf = join(work, 'registries.conf');
  writeFileSync(conf, `unqualified-search-registries = ["docker.io"]\n[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "${host}"\ninsecure = true\n`);
  const podman = (...args: string[]) => execFileSync('podman', ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs', ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CONTAINERS_REGISTRIES_CONF: conf }, timeout: 180_000 });
  for (const [ref, digest] of [['docker.io/library/alpine:3.20', ALPINE.digest], ['docker.io/library/tool:1', TOOL.manifest.digest]] as const) {
    podman('pull', '-q', ref);
    t.match(podman('image', 'inspect', '--format', '{{.Digest}}', ref), digest, `podman (mirror): ${ref}`);
  }
  podman('pull', '-q', '--tls-verify=false', `${host}/team/app:1.0`);
  t.match(podman('image', 'inspect', '--format', '{{.Digest}}', `${host}/team/app:1.0`), APP.manifest.digest, 'podman: the pushed image');

  t.equal(sha256(await skopeoInspectRaw(`docker://${host}/library/alpine:3.20`)), ALPINE.digest, 'skopeo: alpine');
  t.notMatch(isolated.output(), /"cache":"miss"/, 'nothing was fetched: every answer came from the import');
});
