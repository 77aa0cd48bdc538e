/**
 * The three object-store backends as integration tests use them: a real store (Swift for s3 and
 * swift, Azurite for azure), the `storage:` section that points stowage at it, and a driver of
 * our own on the same bucket for looking inside (every blob hashes to its name, no leftovers).
 * Each call gets its own bucket/container, so one store can serve several stowage processes.
 */
import { randomBytes } from 'node:crypto';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import type { StorageDriver } from '../../src/storage/driver.js';
import { AzureDriver } from '../../src/storage/drivers/azure.js';
import { S3Driver } from '../../src/storage/drivers/s3.js';
import { SwiftDriver } from '../../src/storage/drivers/swift.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type AzuriteServer } from './azurite.js';
import { missingSwift, startSwift, SWIFT_KEY, SWIFT_REGION, SWIFT_USER, type SwiftServer } from './swift.js';

export type StoreKind = 's3' | 'azure' | 'swift';

export interface StoreBucket {
  kind: StoreKind;
  /** The storage driver section for stowage's config.yml, e.g. { s3: {...} }. */
  section: Record<string, unknown>;
  /** A driver on the same bucket and root, for looking at what stowage left there. */
  driver: StorageDriver;
  /** The secret that must never appear in logs. */
  secret: string;
}

export interface ObjectStore {
  kind: StoreKind;
  /** A fresh bucket/container (name unique per call). */
  bucket(options?: { chunkSize?: number }): Promise<StoreBucket>;
  /** Makes the store unreachable / reachable again (the data stays). */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

/** Why the store cannot run here (skip reason), or undefined. Throws under CI=true. */
export function missingStore(kind: StoreKind): string | undefined {
  return kind === 'azure' ? undefined : missingSwift();
}

const unique = (kind: string) => `stowage-${kind}-${randomBytes(4).toString('hex')}`;

export async function startObjectStore(kind: StoreKind): Promise<ObjectStore> {
  if (kind === 'azure') return azureStore(await startAzurite());
  return swiftStore(kind, await startSwift());
}

function swiftStore(kind: 's3' | 'swift', swift: SwiftServer): ObjectStore {
  const drivers: StorageDriver[] = [];
  return {
    kind,
    async bucket(options = {}) {
      const name = unique(kind);
      await swift.createContainer(name);
      const chunk = options.chunkSize ?? 5 * 1024 * 1024;
      if (kind === 's3') {
        const section = {
          s3: {
            accesskey: SWIFT_USER, secretkey: SWIFT_KEY, region: SWIFT_REGION, regionendpoint: swift.url,
            forcepathstyle: true, bucket: name, rootdirectory: '/registry', chunksize: chunk,
            multipartcopythresholdsize: 8 * 1024 * 1024, multipartcopychunksize: 5 * 1024 * 1024,
          },
        };
        const driver = new S3Driver({
          bucket: name, region: SWIFT_REGION, regionEndpoint: swift.url, forcePathStyle: true,
          accessKey: SWIFT_USER, secretKey: SWIFT_KEY, rootDirectory: '/registry',
        });
        drivers.push(driver);
        return { kind, section, driver, secret: SWIFT_KEY };
      }
      const section = {
        swift: { authurl: swift.authUrl, username: SWIFT_USER, password: SWIFT_KEY, authversion: 1, container: name, prefix: 'registry', chunksize: chunk },
      };
      const driver = new SwiftDriver({ authUrl: swift.authUrl, username: SWIFT_USER, password: SWIFT_KEY, authVersion: 1, container: name, prefix: 'registry' });
      drivers.push(driver);
      return { kind, section, driver, secret: SWIFT_KEY };
    },
    down: () => swift.stopProxy(),
    up: () => swift.startProxy(),
    async stop() {
      for (const d of drivers) await d.close?.();
      await swift.stop();
    },
  };
}

function azureStore(azurite: AzuriteServer): ObjectStore {
  return {
    kind: 'azure',
    async bucket() {
      const name = unique('azure');
      const service = new BlobServiceClient(azurite.serviceUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
      await service.getContainerClient(name).create();
      const section = {
        azure: { accountname: AZURITE_ACCOUNT, accountkey: AZURITE_KEY, container: name, serviceurl: azurite.serviceUrl, rootdirectory: '/registry' },
      };
      const driver = new AzureDriver({ accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, container: name, serviceUrl: azurite.serviceUrl, rootDirectory: '/registry' });
      return { kind: 'azure', section, driver, secret: AZURITE_KEY };
    },
    down: () => azurite.pause(),
    up: () => azurite.start(),
    stop: () => azurite.stop(),
  };
}
