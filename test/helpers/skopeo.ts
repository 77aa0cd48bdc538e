/** The skopeo binary, as a real client. Plain-HTTP registries on loopback (tls-verify off). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function skopeo(args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    const { stdout } = await run('skopeo', args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

/** skopeo copy, preserving digests (no recompression), all platforms of an index. */
export function skopeoCopy(src: string, dest: string, extra: string[] = []): Promise<string> {
  return skopeo(['copy', '--quiet', '--all', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', ...extra, src, dest]);
}

export async function skopeoInspectRaw(ref: string, extra: string[] = []): Promise<Buffer> {
  return Buffer.from(await skopeo(['inspect', '--raw', '--tls-verify=false', ...extra, ref]), 'utf8');
}
