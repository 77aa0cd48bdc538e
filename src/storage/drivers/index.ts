/** Picks the StorageDriver for the configured backend. */
import type { StorageConfig } from '../../config/schema.js';
import type { StorageDriver } from '../driver.js';
import { AzureDriver } from './azure.js';
import { FilesystemDriver } from './filesystem.js';
import { MemoryDriver } from './memory.js';
import { S3Driver, type S3DriverOptions } from './s3.js';
import { SwiftDriver, type SwiftDriverOptions } from './swift.js';

/** The keys of `o` whose value is not undefined (optional config keys stay absent). */
function defined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

export function createDriver(cfg: StorageConfig, events: { onFull?: () => void } = {}): StorageDriver {
  switch (cfg.driver) {
    case 'filesystem':
      return new FilesystemDriver({ rootDirectory: cfg.rootdirectory, ...(events.onFull ? { onFull: events.onFull } : {}) });
    case 'inmemory':
      return new MemoryDriver();
    case 's3':
      return new S3Driver({
        bucket: cfg.bucket, region: cfg.region, forcePathStyle: cfg.forcepathstyle, secure: cfg.secure, skipVerify: cfg.skipverify,
        encrypt: cfg.encrypt, chunkSize: cfg.chunksize, multipartCopyChunkSize: cfg.multipartcopychunksize,
        multipartCopyMaxConcurrency: cfg.multipartcopymaxconcurrency, multipartCopyThresholdSize: cfg.multipartcopythresholdsize,
        storageClass: cfg.storageclass,
        ...defined({ regionEndpoint: cfg.regionendpoint, accessKey: cfg.accesskey, secretKey: cfg.secretkey, rootDirectory: cfg.rootdirectory, keyId: cfg.keyid }),
      } satisfies S3DriverOptions);
    case 'oss': {
      // OSS speaks the S3 API: virtual-hosted buckets on https://<region>.aliyuncs.com by default.
      const endpoint = cfg.endpoint ?? `${cfg.region}.aliyuncs.com`;
      return new S3Driver({
        bucket: cfg.bucket, region: cfg.region, secure: cfg.secure, chunkSize: cfg.chunksize,
        regionEndpoint: /^https?:\/\//.test(endpoint) ? endpoint : `${cfg.secure ? 'https' : 'http'}://${endpoint}`,
        accessKey: cfg.accesskeyid, secretKey: cfg.accesskeysecret, storageClass: 'NONE',
        ...defined({ rootDirectory: cfg.rootdirectory }),
      } satisfies S3DriverOptions);
    }
    case 'azure':
      return new AzureDriver({
        accountName: cfg.accountname, accountKey: cfg.accountkey, container: cfg.container, realm: cfg.realm, chunkSize: cfg.chunksize,
        ...defined({ serviceUrl: cfg.serviceurl, rootDirectory: cfg.rootdirectory }),
      });
    case 'swift':
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
