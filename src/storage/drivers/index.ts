/**
 * Picks the StorageDriver for the configured backend. The object-store drivers are imported only
 * when configured: their SDKs (AWS, Azure) cost ~60 MiB of resident memory that a filesystem
 * registry should not carry.
 */
import type { StorageConfig } from '../../config/schema.js';
import type { StorageDriver } from '../driver.js';
import { FilesystemDriver } from './filesystem.js';
import { MemoryDriver } from './memory.js';
import type { S3DriverOptions } from './s3.js';
import type { SwiftDriverOptions } from './swift.js';

/** The keys of `o` whose value is not undefined (optional config keys stay absent). */
function defined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/**
 * The configured driver, checked once (StorageDriver.check): a store that is unreachable or
 * refuses the credentials stops start-up with a StoreCheckError (one line, no stack trace);
 * azure's and swift's container is created when missing, as registry:2 does.
 */
export async function createDriver(cfg: StorageConfig, events: { onFull?: () => void } = {}): Promise<StorageDriver> {
  const driver = await buildDriver(cfg, events);
  try {
    await driver.check();
  } catch (e) {
    await driver.close?.().catch(() => undefined);
    throw e;
  }
  return driver;
}

async function buildDriver(cfg: StorageConfig, events: { onFull?: () => void }): Promise<StorageDriver> {
  switch (cfg.driver) {
    case 'filesystem':
      return new FilesystemDriver({ rootDirectory: cfg.rootdirectory, ...(events.onFull ? { onFull: events.onFull } : {}) });
    case 'inmemory':
      return new MemoryDriver();
    case 's3': {
      const { S3Driver } = await import('./s3.js');
      return new S3Driver({
        bucket: cfg.bucket, region: cfg.region, forcePathStyle: cfg.forcepathstyle, secure: cfg.secure, skipVerify: cfg.skipverify,
        encrypt: cfg.encrypt, chunkSize: cfg.chunksize, multipartCopyChunkSize: cfg.multipartcopychunksize,
        multipartCopyMaxConcurrency: cfg.multipartcopymaxconcurrency, multipartCopyThresholdSize: cfg.multipartcopythresholdsize,
        storageClass: cfg.storageclass,
        ...defined({ regionEndpoint: cfg.regionendpoint, accessKey: cfg.accesskey, secretKey: cfg.secretkey, rootDirectory: cfg.rootdirectory, keyId: cfg.keyid }),
      } satisfies S3DriverOptions);
    }
    case 'oss': {
      // OSS speaks the S3 API: virtual-hosted buckets on https://<region>.aliyuncs.com by default.
      const endpoint = cfg.endpoint ?? `${cfg.region}.aliyuncs.com`;
      const { S3Driver } = await import('./s3.js');
      return new S3Driver({
        bucket: cfg.bucket, region: cfg.region, secure: cfg.secure, chunkSize: cfg.chunksize,
        regionEndpoint: /^https?:\/\//.test(endpoint) ? endpoint : `${cfg.secure ? 'https' : 'http'}://${endpoint}`,
        accessKey: cfg.accesskeyid, secretKey: cfg.accesskeysecret, storageClass: 'NONE', configName: 'oss',
        ...defined({ rootDirectory: cfg.rootdirectory }),
      } satisfies S3DriverOptions);
    }
    case 'azure': {
      const { AzureDriver } = await import('./azure.js');
      return new AzureDriver({
        accountName: cfg.accountname, accountKey: cfg.accountkey, container: cfg.container, realm: cfg.realm, chunkSize: cfg.chunksize,
        ...defined({ serviceUrl: cfg.serviceurl, rootDirectory: cfg.rootdirectory }),
      });
    }
    case 'swift': {
      const { SwiftDriver } = await import('./swift.js');
      return new SwiftDriver({
        authUrl: cfg.authurl, username: cfg.username, password: cfg.password, container: cfg.container,
        authVersion: cfg.authversion, chunkSize: cfg.chunksize, insecureSkipVerify: cfg.insecureskipverify,
        tempUrlContainerKey: cfg.tempurlcontainerkey, tempUrlMethods: cfg.tempurlmethods, endpointType: cfg.endpointtype,
        ...defined({
          tenant: cfg.tenant, tenantId: cfg.tenantid, domain: cfg.domain, domainId: cfg.domainid, tenantDomain: cfg.tenantdomain,
          tenantDomainId: cfg.tenantdomainid, trustId: cfg.trustid, region: cfg.region, prefix: cfg.prefix, secretKey: cfg.secretkey,
        }),
      } satisfies SwiftDriverOptions);
    }
  }
}
