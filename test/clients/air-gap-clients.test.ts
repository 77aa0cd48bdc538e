/**
 * Across the air gap with the clients users have: a bundle exported from a connected stowage is
 * imported into a stowage whose upstream cannot be reached, inside a network namespace with only
 * loopback; then the Docker daemon (registry-mirrors), podman (a registries.conf mirror) and
 * skopeo pull every image from it, with the digests the upstream had.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { makeImage, makeIndex, pushImageHttp } from '../helpers/image.js';
import { LoopbackNamespace, mirrorRegistriesConf, until } from '../helpers/loopback-ns.js';
import { runCli, startRegistry2, startStowage, writeStowageConfig } from '../helpers/procs.js';
import { missingTools } from '../helpers/tools.js';

const skip = process.getuid?.() !== 0 && process.env.CI !== 'true'
  ? 'needs root (network namespace, dockerd)'
  : missingTools('ip', 'nsenter', 'dockerd', 'docker', 'podman', 'docker-registry', 'skopeo', 'curl');

const CLI = resolve(import.meta.dirname, '../../dist/cli.js');
const ALPINE = makeIndex([
  makeImage({ seed: 51, layers: 2, layerSize: 150_000, platform: { architecture: 'amd64', os: 'linux' } }),
  makeImage({ seed: 52, layers: 2, layerSize: 150_000, platform: { architecture: 'arm64', os: 'linux' } }),
]);
const TOOL = makeImage({ seed: 53, layers: 3, layerSize: 100_000 });
const APP = makeImage({ seed: 54, layers: 1, layerSize: 100_000 });

t.test('dockerd, podman and skopeo pull imported images from an isolated stowage', { skip, timeout: 600_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'stowage-airgap-clients-'));
  // The connected side, on this machine's loopback.
  const upstream = await startRegistry2();
  const connected = await startStowage({ config: { upstreams: [{ name: 'docker.io', url: upstream.url }], default_upstream: 'docker.io' } });
  let ns: LoopbackNamespace | undefined;
  t.teardown(async () => {
    await ns?.close();
    await connected.stop();
    await upstream.stop();
    rmSync(work, { recursive: true, force: true });
  });
  await pushImageHttp(upstream.url, 'library/alpine', '3.20', ALPINE);
  await pushImageHttp(upstream.url, 'library/tool', '1', TOOL);
  await pushImageHttp(connected.url, 'team/app', '1.0', APP);
  const bundle = join(work, 'bundle.tar');
  const exported = await runCli(['export', '--config', connected.configFile!, '-o', bundle, 'alpine:3.20', 'tool:1', 'team/app:1.0']);
  t.equal(exported.code, 0, exported.stdout + exported.stderr);

  // The isolated side: loopback only; its upstream would be Docker Hub's real address.
  ns = new LoopbackNamespace('airgap');
  t.same(ns.links(), ['lo'], 'the namespace has loopback only');
  const isolated = await writeStowageConfig({ port: 5000, config: { upstreams: [{ name: 'docker.io', url: 'https://registry-1.docker.io' }], default_upstream: 'docker.io' } });
  const imported = ns.run(process.execPath, [CLI, 'import', '--config', isolated.file, bundle]);
  t.match(imported, /docker\.io\/library\/alpine:3\.20\s+\S+\s+cached\s+imported/);
  const stowage = ns.daemon(process.execPath, [CLI, 'serve', isolated.file], join(work, 'stowage.log'));
  await until('stowage', ns.httpUp('http://127.0.0.1:5000/v2/'), 20_000, () => stowage.output());

  const docker = await ns.dockerd(work, { 'registry-mirrors': ['http://127.0.0.1:5000'] });
  docker('pull', 'library/alpine:3.20');
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'library/alpine:3.20'), ALPINE.digest, 'docker (registry-mirrors): alpine');
  docker('pull', 'library/tool:1');
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'library/tool:1'), TOOL.manifest.digest, 'docker: tool');
  docker('pull', '127.0.0.1:5000/team/app:1.0');
  t.match(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', '127.0.0.1:5000/team/app:1.0'), APP.manifest.digest, 'docker: the pushed image');

  const podman = ns.podman(work, mirrorRegistriesConf('127.0.0.1:5000'));
  for (const [ref, digest] of [['docker.io/library/alpine:3.20', ALPINE.digest], ['docker.io/library/tool:1', TOOL.manifest.digest]] as const) {
    podman('pull', '-q', ref);
    t.match(podman('image', 'inspect', '--format', '{{.Digest}}', ref), digest, `podman (mirror): ${ref}`);
  }
  podman('pull', '-q', '--tls-verify=false', '127.0.0.1:5000/team/app:1.0');
  t.match(podman('image', 'inspect', '--format', '{{.Digest}}', '127.0.0.1:5000/team/app:1.0'), APP.manifest.digest, 'podman: the pushed image');

  const raw = ns.run('skopeo', ['inspect', '--raw', '--tls-verify=false', 'docker://127.0.0.1:5000/library/alpine:3.20']);
  t.equal(`sha256:${(await import('node:crypto')).createHash('sha256').update(raw).digest('hex')}`, ALPINE.digest, 'skopeo: alpine');
  t.notMatch(stowage.output(), /"cache":"miss"/, 'nothing was fetched: every answer came from the import');
});
