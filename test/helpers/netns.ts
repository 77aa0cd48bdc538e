/**
 * Runs a whole test file inside a network namespace that has only a loopback interface, the
 * way stowage runs in an isolated network: nothing outside is reachable, DNS included. The file
 * calls `isolate()` first: in the outer process it creates the namespace, runs the same file
 * again inside it (its TAP output goes straight to tap's runner) and removes the namespace; in
 * the inner process it returns true and the tests run. Every process the tests start (stowage,
 * registry:2, skopeo, dockerd) inherits the namespace.
 */
import { execFileSync, spawnSync } from 'node:child_process';

const INNER = 'STOWAGE_TEST_NETNS';

/** The namespace's name when running inside one, else undefined. */
export const insideNamespace = (): string | undefined => process.env[INNER];

/**
 * Returns true in the inner process. In the outer one it runs the inner one and exits with its
 * status (so the caller never gets control back). `skipReason` skips the whole file instead.
 */
export function isolate(skipReason: string | undefined): boolean {
  if (insideNamespace()) return true;
  if (skipReason !== undefined) return false;
  const name = `stowage-iso-${process.pid}`;
  execFileSync('ip', ['netns', 'add', name]);
  let status = 1;
  try {
    execFileSync('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
    // nsenter joins only the network namespace (`ip netns exec` also remounts /sys, which dockerd
    // needs intact).
    const r = spawnSync('nsenter', [`--net=/run/netns/${name}`, '--', process.execPath, ...process.execArgv, process.argv[1]!], {
      stdio: 'inherit', env: { ...process.env, [INNER]: name },
    });
    status = r.status ?? 1;
  } finally {
    try { execFileSync('ip', ['netns', 'del', name]); } catch { /* already gone */ }
  }
  process.exit(status);
}

/** The interfaces of the current network namespace, by name. */
export function interfaces(): string[] {
  return execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).trim().split('\n').map((l) => l.split(':')[1]!.trim());
}
