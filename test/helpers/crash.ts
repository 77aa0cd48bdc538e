/**
 * The kill -9 scenario shared by the filesystem and object-store crash tests: kill stowage while
 * uploads are in flight, restart on the same storage: everything acknowledged is intact, nothing
 * partial is visible, every blob hashes to its name, and the interrupted upload was really
 * under way (its session exists).
 */
import { connect, type Socket } from 'node:net';
import type { Test } from 'tap';
import { makeImage, prngBytes, pushImageHttp, sha256, ALL_ACCEPT, type Image } from './image.js';
import type { Proc } from './procs.js';
import { sleep } from './tools.js';

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

export interface CrashTarget {
  start(): Promise<Proc>;
  /** Blob files that do not hash to their name (or stray files beside them). */
  corruptBlobs(): Promise<string[]>;
  /** Evidence that the kill came mid-upload: bytes or sessions of the interrupted upload in storage. */
  partialEvidence(): Promise<number>;
}

export async function crashRounds(t: Test, target: CrashTarget, kills: readonly number[] = [80, 400, 1200]): Promise<Proc> {
  const acknowledged: Array<{ repo: string; tag: string; image: Image }> = [];
  const inflight: string[] = [];
  let s = await target.start();
  for (const [i, killAfterMs] of kills.entries()) {
    const round = i + 1;
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
    const mono = prngBytes(round * 104729, 64 * 1024 * 1024);
    inflight.push(sha256(mono));
    const s2 = trickle(s.port, `POST /v2/crash/mono/blobs/uploads/?digest=${sha256(mono)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${mono.length}\r\n\r\n`, mono);
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
    const evidence = await target.partialEvidence();
    t.ok(evidence > 0, `round ${round}: the interrupted upload was under way (${evidence}), and is not visible`);
  }
  return s;
}
