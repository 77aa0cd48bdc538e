// Should stowage offer HTTP/2 over TLS? Node's own servers, same 64 MiB file, same 1 MiB reads:
// node:https (HTTP/1.1) against node:http2 (secure), both measured by h2load (16 clients, one
// stream each), alternating, 3 rounds. stowage would add fastify's http2 compatibility layer on
// top, so if raw http2 is slower for blobs, stowage's would be too.
// Usage: node bench/http2.mjs   (needs h2load from nghttp2-client, openssl)
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, need, table } from './lib.mjs';

need(['h2load', 'openssl']);
const work = mkdtempSync(join(tmpdir(), 'stowage-h2-'));
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem',
  '-subj', '/CN=localhost', '-days', '1'], { cwd: work, stdio: 'ignore' });
const SIZE = 64 * 1024 * 1024;
writeFileSync(join(work, 'blob'), randomBytes(SIZE));
const tls = { key: readFileSync(join(work, 'key.pem')), cert: readFileSync(join(work, 'cert.pem')) };

async function send(res) {
  const fh = await open(join(work, 'blob'));
  for (let pos = 0; pos < SIZE;) {
    const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(1024 * 1024), 0, 1024 * 1024, pos);
    pos += bytesRead;
    if (!res.write(buffer.subarray(0, bytesRead))) await new Promise((r) => res.once('drain', r));
  }
  res.end();
  await fh.close();
}
const handler = (_req, res) => {
  res.writeHead(200, { 'content-length': SIZE, 'content-type': 'application/octet-stream' });
  void send(res);
};

async function measure(protocol) {
  const port = await freePort();
  const server = protocol === 'h2' ? http2.createSecureServer(tls, handler) : https.createServer(tls, handler);
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const args = protocol === 'h2' ? ['-m', '1'] : ['--h1'];
  // Asynchronously: the server runs in this process.
  const { stdout: out } = await promisify(execFile)('h2load', [...args, '-n', '64', '-c', '16', `https://127.0.0.1:${port}/blob`], { encoding: 'utf8' });
  await new Promise((r) => { server.close(r); server.closeAllConnections?.(); });
  const m = /finished in [\d.]+m?s, [\d.]+ req\/s, ([\d.]+)([KMG]B)\/s/.exec(out);
  if (!m || !/64 succeeded/.test(out)) throw new Error(`h2load failed:\n${out}`);
  return Number(m[1]) * { KB: 1e3, MB: 1e6, GB: 1e9 }[m[2]];
}

const rows = [['round', 'HTTP/1.1 over TLS (MB/s)', 'HTTP/2 (MB/s)', 'h2 / h1.1']];
for (let round = 1; round <= 3; round++) {
  const h1 = await measure('h1');
  const h2 = await measure('h2');
  rows.push([round, (h1 / 1e6).toFixed(0), (h2 / 1e6).toFixed(0), (h2 / h1).toFixed(2)]);
}
const report = `## HTTP/2 vs HTTP/1.1 over TLS for a 64 MiB blob (${new Date().toISOString()})
machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; h2load -n 64 -c 16; loopback
${table(rows)}
`;
console.log(report);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `http2-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), report);
rmSync(work, { recursive: true, force: true });
