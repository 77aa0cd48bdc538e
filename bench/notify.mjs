// Benchmark (issue 12): what durable notifications cost. The same stowage data served twice:
// without notifications, and with one webhook endpoint (a receiver process answering 200), where
// every GET records a pull event in the SQLite outbox (and AsyncLocalStorage carries the request)
// and a delivery loop POSTs them. Also pushes: small images, each 3 events.
// Usage: npm run build && node bench/notify.mjs [--seconds 10]
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { freePort, makeImage, need, pushImage, sha256, start, stop, stowageConfig, table, waitHttp, wrk, STOWAGE_NODE_ARGS } from './lib.mjs';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 10;
need(['wrk']);
const work = mkdtempSync(join(tmpdir(), 'stowage-bench-notify-'));
const receiverPort = await freePort();
const receiver = start('receiver', process.execPath, ['test/helpers/webhook-receiver.mjs', String(receiverPort), '/dev/null']);
await new Promise((r) => setTimeout(r, 500));

const hook = `notifications:
  endpoints:
    - {name: bench, url: "http://127.0.0.1:${receiverPort}/events", timeout: 5s}
`;
const hookNoPulls = `notifications:
  endpoints:
    - {name: bench, url: "http://127.0.0.1:${receiverPort}/events", timeout: 5s, ignore: {actions: [pull]}}
`;
const image = makeImage([1024]);
const results = {};
const variants = [['off', ''], ['on', hook], ['nopull', hookNoPulls], ['off (again)', ''], ['on (again)', hook], ['nopull (again)', hookNoPulls]];
for (const [name, extra] of variants) {
  const port = await freePort();
  const root = join(work, name.replace(/\W/g, ''));
  writeFileSync(join(work, 'st.yml'), stowageConfig(root, port, extra));
  const st = start('stowage', process.execPath, [...STOWAGE_NODE_ARGS, 'dist/cli.js', 'serve', join(work, 'st.yml')]);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/v2/`);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 50; i++) await pushImage(url, `bench/push${i}`, 'v1', makeImage([1024]));
  const pushMs = Number(process.hrtime.bigint() - t0) / 1e6 / 50;
  await pushImage(url, 'bench/small', 'latest', image);
  wrk(`${url}/v2/bench/small/manifests/latest`, { seconds: 2, headers: ['Accept: application/vnd.oci.image.manifest.v1+json'] });
  results[name] = {
    manifest: wrk(`${url}/v2/bench/small/manifests/latest`, { seconds, headers: ['Accept: application/vnd.oci.image.manifest.v1+json'] }),
    blob: wrk(`${url}/v2/bench/small/blobs/${sha256(image.layers[0])}`, { seconds }),
    pushMs,
  };
  await stop(st);
}
await stop(receiver);

const mean = (v, k) => (k === 'pushMs' ? (results[v].pushMs + results[`${v} (again)`].pushMs) / 2 : (results[v][k].rps + results[`${v} (again)`][k].rps) / 2);
const row = (label, k, digits) => [label, ...['off', 'on', 'nopull'].map((v) => mean(v, k).toFixed(digits)),
  (mean('on', k) / mean('off', k)).toFixed(2), (mean('nopull', k) / mean('off', k)).toFixed(2)];
const rows = [
  ['metric (mean of 2 runs each)', 'notifications off', 'on (1 endpoint)', 'on, pulls ignored', 'on / off', 'pulls ignored / off'],
  row('manifest GET by tag (req/s)', 'manifest', 0),
  row('1 KiB blob GET (req/s)', 'blob', 0),
  row('push of a 1-layer image over HTTP (ms, 50 per run)', 'pushMs', 1),
];
const report = `## notifications on vs off (${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}; wrk -t2 -c16 -d${seconds}s; loopback
${table(rows)}
runs: ${Object.entries(results).map(([k, v]) => `${k}: manifest ${v.manifest.rps.toFixed(0)}, blob ${v.blob.rps.toFixed(0)}`).join('; ')}
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `notify-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
