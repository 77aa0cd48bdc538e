/**
 * The start-up check every driver runs (StorageDriver.check): one probe of the store, bounded in
 * time, whose failure becomes a StoreCheckError with the store's own error on one line. Failing
 * start-up (as registry:2 does when its driver cannot be built) rather than serving 503s: a
 * replica that cannot reach its store never joins the load balancer, and the orchestrator's
 * restarts with backoff retry it.
 */
import { StoreCheckError } from '../driver.js';

/** The SDKs' own retries (about 2 s for a refused connection) fit well inside. */
export const CHECK_TIMEOUT_MS = 30_000;

/**
 * The store's error on one line: "Code: message" from the S3 and Azure SDKs, "ECONNREFUSED ..."
 * for the network, the first line only (Azure appends request ids and times on more lines).
 */
export function storeErrorText(e: unknown): string {
  const err = e as { name?: string; code?: string; message?: string; errors?: Array<{ message?: string }> };
  // Node's happy-eyeballs connect failure is an AggregateError with an empty message.
  const message = (err?.message || err?.errors?.[0]?.message || String(e)).split('\n')[0]!.trim();
  // The S3 SDK names its errors after the store's code (NoSuchBucket); class names (RestError, SwiftHttpError) say nothing.
  const code = err?.code ?? (err?.name && !/Error$/.test(err.name) ? err.name : undefined);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** Runs probe; any failure, or no answer within CHECK_TIMEOUT_MS, rejects with a StoreCheckError. */
export async function checkStore(driver: string, where: string, probe: (signal: AbortSignal) => Promise<unknown>,
  timeoutMs = CHECK_TIMEOUT_MS): Promise<void> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
  });
  try {
    await Promise.race([probe(abort.signal), timeout]);
  } catch (e) {
    throw new StoreCheckError(driver, where, storeErrorText(e), { cause: e });
  } finally {
    clearTimeout(timer);
  }
}
