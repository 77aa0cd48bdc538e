/**
 * The kill -9 crash rounds, shared by the crash test (test config), the isolated-network test
 * (the shipped config with an unreachable default upstream) and the object-store crash test:
 * kill -9 while uploads are in flight, restart on the same storage: everything acknowledged is
 * intact, nothing partial is visible, and every blob hashes to its own name.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import { makeImage, prngBytes, pushImageHttp, sha256, ALL_ACCEPT, type Image } from './image.js';
import type { Proc } from './procs.js';
import { sleep } from './tools.js';

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Every blobs/sha256/xx/<hex>/data must hash to <hex>. */
async function corruptBlobs(root: string): Promise<string[]> {
  const base = join(root, 'docker/registry/v2/blobs/sha256');
  const bad: string[] = [];
  let prefixes: string[] = [];
  try { prefixes = await readdir(base); } catch { return bad; }
  for (const p of prefixes) {
    for (const hex of await readdir(join(base, p))) {
      const files = await readdir(join(base, p, hex));
      for (const f of files) if (f !== 'data') bad.push(`${hex}/${f} (stray file)`);
      if (files.includes('data') && (await hashFile(join(base, p, hex, 'data'))) !== `sha256:${hex}`) bad.push(hex);
    }
  }
  return bad;
}

/** Starts a request whose body trickles in and never completes. */
function trickle(port: number, head: string, body: Buffer): Socket {
  const sock = connect(port, '127.0.0.1');
  sock.on('error', () => undefined);
  sock.write(head);
  let off = 0;
  const timer = setInterval(() => {
    if (off >= body.length - 1 || sock.destroyed) return clearInterval(timer);
    const end = Math.min(off + 256 * 1024, body.length - 1); // the last byte is never sent
    sock.write(body.subarray(off, end));
    off = end;
  }, 10);
  sock.on('close', () => clearInterval(timer));
  return sock;
}

/** Bytes in every upload session under `sessions`. */
async function partialBytes(sessions: string): Promise<number> {
  let partial = 0;
  for (const u of await readdir(sessions).catch(() => [] as string[])) {
    partial += (await stat(join(sessions, u, 'data')).catch(() => ({ size: 0 }))).size;
  }
  return partial;
}

/** Where the crash rounds run, and how to look at what they left. */
export interface CrashTarget {
  /** Starts stowage on the same storage every time. */
  start(): Promise<Proc>;
  /** Blobs that do not hash to their name (or stray files beside them). */
  corruptBlobs(): Promise<string[]>;
  /**
   * Evidence of the interrupted monolithic uploads in storage (bytes on disk; sessions in an
   * object store, which shows no bytes before commit). It grows when a new upload is under way.
   */
  partialEvidence(): Promise<number>;
  /** What the evidence counts, for the test's messages. */
  evidenceUnit: string;
}

const MONO_SESSIONS = 'docker/registry/v2/repositories/crash/mono/_uploads';

/** The rounds on a filesystem data directory. */
export function filesystemTarget(dataDir: string, start: () => Promise<Proc>): CrashTarget {
  return {
    start,
    corruptBlobs: () => corruptBlobs(dataDir),
    partialEvidence: () => partialBytes(join(dataDir, MONO_SESSIONS)),
    evidenceUnit: 'bytes on disk',
  };
}

/** `start` starts stowage on the data directory `dataDir` (the same one every time), or a target. */
export async function crashRounds(t: Test, where: string | CrashTarget, start?: () => Promise<Proc>): Promise<void> {
  const target = typeof where === 'string' ? filesystemTarget(where, start!) : where;
  const acknowledged: Array<{ repo: string; tag: string; image: Image }> = [];
  const inflight: string[] = [];
  let s = await target.start();
  for (const [round, killAfterMs] of [[1, 80], [2, 400], [3, 1200]] as const) {
    const image = makeImage({ seed: 100 + round, layers: 2, layerSize: 512 * 1024 });
    await pushImageHttp(s.url, `crash/r${round}`, 'v1', image);
    acknowledged.push({ repo: `crash/r${round}`, tag: 'v1', image });

    // (a) a chunked upload: one chunk acknowledged, the next one cut off by the kill
    const big = prngBytes(round * 7919, 16 * 1024 * 1024);
    const bigDigest = sha256(big);
    inflight.push(bigDigest);
    const post = await fetch(`${s.url}/v2/crash/r${round}/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(post.headers.get('location')!).pathname;
    const first = await fetch(`${s.url}${loc}`, { method: 'PATCH', body: big.subarray(0, 4 * 1024 * 1024), headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${4 * 1024 * 1024 - 1}` } });
    t.equal(first.status, 202, `round ${round}: first chunk acknowledged`);
    const rest = big.subarray(4 * 1024 * 1024);
    const s1 = trickle(s.port, `PUT ${loc}?digest=${bigDigest} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${rest.length}\r\n\r\n`, rest);
    // (b) a monolithic upload that never finishes (64 MiB at ~25 MiB/s: still going at the kill)
    const before = await target.partialEvidence();
    const mono = prngBytes(round * 104729, 64 * 1024 * 1024);
    inflight.push(sha256(mono));
    const s2 = trickle(s.port, `POST /v2/crash/mono/blobs/uploads/?digest=${sha256(mono)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${mono.length}\r\n\r\n`, mono);
    // The kill must land mid-upload: wait until the monolithic upload shows in storage (a loaded
    // machine can take longer than killAfterMs to get there), then give it killAfterMs more.
    for (const end = Date.now() + 15_000; Date.now() < end && (await target.partialEvidence()) <= before;) await sleep(20);
    await sleep(killAfterMs);
    await s.kill9();
    s1.destroy();
    s2.destroy();

    s = await target.start();
    for (const a of acknowledged) {
      const m = await fetch(`${s.url}/v2/${a.repo}/manifests/${a.tag}`, { headers: { accept: ALL_ACCEPT } });
      t.equal(m.status, 200, `round ${round}: ${a.repo}:${a.tag} resolves`);
      t.ok(Buffer.from(await m.arrayBuffer()).equals(a.image.manifest.bytes), `round ${round}: ${a.repo} manifest intact`);
      for (const b of [a.image.config, ...a.image.layers]) {
        const r = await fetch(`${s.url}/v2/${a.repo}/blobs/${b.digest}`);
        t.equal(sha256(Buffer.from(await r.arrayBuffer())), b.digest, `round ${round}: ${a.repo} blob ${b.digest.slice(7, 19)} intact`);
      }
    }
    for (const d of inflight) {
      for (const repo of [`crash/r${round}`, 'crash/mono']) {
        const h = await fetch(`${s.url}/v2/${repo}/blobs/${d}`, { method: 'HEAD' });
        t.equal(h.status, 404, `round ${round}: in-flight blob ${d.slice(7, 19)} not visible in ${repo}`);
      }
    }
    t.same(await target.corruptBlobs(), [], `round ${round}: every blob hashes to its name`);
    // proof that the kill really came mid-upload: partial sessions exist (and stay invisible)
    const partial = await target.partialEvidence();
    t.ok(partial > before, `round ${round}: ${partial - before} ${target.evidenceUnit} of the interrupted upload in storage, none visible`);
  }
  await s.stop();
}
