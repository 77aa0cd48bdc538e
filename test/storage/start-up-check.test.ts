/**
 * Storage at start-up, against the real stores (one Swift and one Azurite for the whole file):
 * azure's and swift's container is created when missing, as registry:2 does, and a push then
 * works; a store that refuses the credentials or cannot be reached stops `stowage serve` with one
 * line naming the driver, the endpoint and the store's own error, exit code 1, no stack trace.
 */
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type AzuriteServer } from '../helpers/azurite.js';
import { ALL_ACCEPT, makeImage, pushImageHttp } from '../helpers/image.js';
import { runCli, startStowage, writeStowageConfig } from '../helpers/procs.js';
import { scratchDir } from '../helpers/scratch.js';
import { missingSwift, startSwift, SWIFT_KEY, SWIFT_REGION, SWIFT_USER, type SwiftServer } from '../helpers/swift.js';
import { freePort } from '../helpers/tools.js';

const skipSwift = missingSwift();
let swift: SwiftServer | undefined;
let azurite: AzuriteServer | undefined;

t.before(async () => {
  // Each is kept as soon as it runs, so the teardown stops it even if the other fails to start.
  const started = await Promise.allSettled([
    skipSwift ? undefined : startSwift().then((s) => { swift = s; }),
    startAzurite().then((a) => { azurite = a; }),
  ]);
  for (const r of started) if (r.status === 'rejected') throw r.reason;
});
t.teardown(async () => { await Promise.all([swift?.stop(), azurite?.stop()]); });

const unique = (kind: string) => `stowage-check-${kind}-${randomBytes(4).toString('hex')}`;

/**
 * Runs `stowage serve` with this storage section, expecting it to refuse to start: exactly one
 * "stowage: storage: ..." line, matching `line`, exit code 1, no stack trace, no fatal log.
 */
async function refusesToStart(t: Test, storage: Record<string, unknown>, line: RegExp): Promise<void> {
  const { file } = await writeStowageConfig({ storage });
  const started = Date.now();
  const r = await runCli(['serve', '--config', file], { timeoutMs: 90_000 });
  const out = r.stdout + r.stderr;
  const ours = out.split('\n').filter((l) => l.startsWith('stowage'));
  t.equal(r.code, 1, `exit code 1 (after ${Date.now() - started} ms)`);
  t.equal(ours.length, 1, `one line: ${ours.join(' | ')}`);
  t.match(ours[0] ?? '', line);
  t.notMatch(out, /^\s+at /m, 'no stack trace');
  t.notMatch(out, /"level":60/, 'no fatal log record (it would carry the stack)');
  const secrets = Object.values(storage).flatMap((section) => ['accountkey', 'secretkey', 'password']
    .map((k) => (section as Record<string, unknown>)[k]).filter((v): v is string => typeof v === 'string'));
  for (const secret of secrets) t.notOk(out.includes(secret), 'the secret is not in the output');
}

async function pushAndPull(t: Test, storage: Record<string, unknown>): Promise<void> {
  const s = await startStowage({ storage });
  t.teardown(() => s.stop());
  const image = makeImage({ seed: 1601, layers: 1, layerSize: 50_000 });
  await pushImageHttp(s.url, 'check/app', 'v1', image);
  const m = await fetch(`${s.url}/v2/check/app/manifests/v1`, { headers: { accept: ALL_ACCEPT } });
  t.ok(Buffer.from(await m.arrayBuffer()).equals(image.manifest.bytes), 'the pushed manifest is served');
}

t.test('azure: a missing container is created at start, and a push works', async (t) => {
  const container = unique('az');
  const service = new BlobServiceClient(azurite!.serviceUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  t.notOk(await service.getContainerClient(container).exists(), 'the container is not there before');
  await pushAndPull(t, { azure: { accountname: AZURITE_ACCOUNT, accountkey: AZURITE_KEY, container, serviceurl: azurite!.serviceUrl, rootdirectory: '/registry' } });
  t.ok(await service.getContainerClient(container).exists(), 'stowage created it');
});

t.test('azure: a wrong account key or no Azurite stops start-up with one line', async (t) => {
  const wrongKey = Buffer.from('not the key of this account, not at all').toString('base64');
  await refusesToStart(t, { azure: { accountname: AZURITE_ACCOUNT, accountkey: wrongKey, container: 'anything', serviceurl: azurite!.serviceUrl } },
    new RegExp(`^stowage: storage: azure at ${azurite!.serviceUrl} container "anything": AuthorizationFailure: Server failed to authenticate the request`));
  const dead = `http://127.0.0.1:${await freePort()}/${AZURITE_ACCOUNT}`;
  await refusesToStart(t, { azure: { accountname: AZURITE_ACCOUNT, accountkey: AZURITE_KEY, container: 'anything', serviceurl: dead } },
    new RegExp(`^stowage: storage: azure at ${dead} container "anything": .*ECONNREFUSED`));
});

t.test('swift, native API: a missing container is created at start; wrong credentials or no Swift stop start-up', { skip: skipSwift }, async (t) => {
  const section = (over: Record<string, unknown>) => ({ swift: { authurl: swift!.authUrl, username: SWIFT_USER, password: SWIFT_KEY, authversion: 1, container: unique('sw'), ...over } });
  const container = unique('sw');
  const { token, storageUrl } = await swift!.auth();
  const exists = async () => (await fetch(`${storageUrl}/${container}`, { method: 'HEAD', headers: { 'X-Auth-Token': token } })).status;
  t.equal(await exists(), 404, 'the container is not there before');
  await pushAndPull(t, section({ container }));
  t.equal(await exists(), 204, 'stowage created it');

  await refusesToStart(t, section({ password: 'wrong', container: 'reg' }),
    new RegExp(`^stowage: storage: swift at ${swift!.authUrl} container "reg": swift auth v1.0 failed: 401$`));
  const dead = `http://127.0.0.1:${await freePort()}/auth/v1.0`;
  await refusesToStart(t, section({ authurl: dead, container: 'reg' }), new RegExp(`^stowage: storage: swift at ${dead} container "reg": .*ECONNREFUSED`));
});

t.test('s3 on Swift\'s s3api: wrong credentials, no such bucket, or no store stop start-up with one line', { skip: skipSwift }, async (t) => {
  const bucket = unique('s3');
  await swift!.createContainer(bucket);
  const section = (over: Record<string, unknown>) => ({
    s3: { accesskey: SWIFT_USER, secretkey: SWIFT_KEY, region: SWIFT_REGION, regionendpoint: swift!.url, forcepathstyle: true, bucket, ...over },
  });
  // Amazon S3 answers an unknown key with InvalidAccessKeyId; Swift's s3api (tempauth) with this.
  await refusesToStart(t, section({ accesskey: 'nobody:none' }),
    new RegExp(`^stowage: storage: s3 at ${swift!.url} bucket "${bucket}": SignatureDoesNotMatch: The request signature we calculated`));
  await refusesToStart(t, section({ bucket: 'no-such-bucket' }),
    new RegExp(`^stowage: storage: s3 at ${swift!.url} bucket "no-such-bucket": NoSuchBucket: `));
  const dead = `http://127.0.0.1:${await freePort()}`;
  await refusesToStart(t, section({ regionendpoint: dead }), new RegExp(`^stowage: storage: s3 at ${dead} bucket "${bucket}": .*ECONNREFUSED`));
  // The right credentials: it starts (so the refusals above are about what was wrong).
  await pushAndPull(t, section({ rootdirectory: '/registry' }));
});

t.test('filesystem: a root that cannot be created stops start-up with one line', async (t) => {
  const dir = await scratchDir('stowage-check-fs-');
  await writeFile(join(dir, 'a-file'), 'not a directory');
  const under = join(dir, 'a-file', 'registry');
  await refusesToStart(t, { filesystem: { rootdirectory: under } },
    new RegExp(`^stowage: storage: filesystem at ${under}: ENOTDIR: not a directory, mkdir`));
  if (process.getuid?.() !== 0) return;
  // Run as nobody, under a directory only root may enter: permission denied.
  const locked = join(dir, 'locked');
  await mkdir(locked, { mode: 0o700 });
  await chmod(dir, 0o755);
  const { file } = await writeStowageConfig({ storage: { filesystem: { rootdirectory: join(locked, 'registry') } } });
  await chmod(file, 0o644);
  const r = await runCli(['serve', '--config', file], { timeoutMs: 60_000, uid: 65534 });
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`^stowage: storage: filesystem at ${join(locked, 'registry')}: EACCES: permission denied`, 'm'));
});
