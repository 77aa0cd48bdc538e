/** Link files: a tiny file holding "sha256:<hex>", registry:2's way of pointing at a blob. */
import { tryParseDigest, type Digest } from '../oci/digest.js';
import { isPathNotFound, type StorageDriver } from '../storage/driver.js';

/** The digest a link points to, or undefined if the link is missing or unreadable. */
export async function readLink(storage: StorageDriver, path: string): Promise<Digest | undefined> {
  try {
    return tryParseDigest((await storage.getContent(path)).toString('utf8').trim());
  } catch (e) {
    if (isPathNotFound(e)) return undefined;
    throw e;
  }
}

export async function writeLink(storage: StorageDriver, path: string, digest: Digest): Promise<void> {
  await storage.putContent(path, Buffer.from(digest));
}

/** Deletes path; true if something was there. */
export async function deleteIfExists(storage: StorageDriver, path: string): Promise<boolean> {
  try {
    await storage.delete(path);
    return true;
  } catch (e) {
    if (isPathNotFound(e)) return false;
    throw e;
  }
}

/** Children of a directory, or [] if it does not exist. */
export async function listOrEmpty(storage: StorageDriver, path: string): Promise<string[]> {
  try {
    return await storage.list(path);
  } catch (e) {
    if (isPathNotFound(e)) return [];
    throw e;
  }
}

export const baseName = (path: string): string => path.slice(path.lastIndexOf('/') + 1);
