/** Picks the StorageDriver for the configured backend. */
import type { StorageConfig } from '../../config/schema.js';
import type { StorageDriver } from '../driver.js';
import { AzureDriver } from './azure.js';
import { FilesystemDriver } from './filesystem.js';
import { MemoryDriver } from './memory.js';
import { S3Driver } from './s3.js';
import { SwiftDriver } from './swift.js';

export function createDriver(cfg: StorageConfig): StorageDriver {
  switch (cfg.driver) {
    case 'filesystem':
      return new FilesystemDriver({ rootDirectory: cfg.rootdirectory });
    case 'inmemory':
      return new MemoryDriver();
    case 's3':
      return new S3Driver({
        bucket: cfg.bucket, region: cfg.region, forcePathStyle: cfg.forcepathstyle, secure: cfg.secure, skipVerify: cfg.skipverify,
        encrypt: cfg.encrypt, chunkSize: cfg.chunksize, multipartCopyChunkSize: cfg.multipartcopychunksize,
        multipartCopyMaxConcurrency: cfg.multipartcopymaxconcurrency, multipartCopyThresholdSize: cfg.multipartcopythresholdsize,
        storageClass: cfg.storageclass,
        ...(cfg.regionendpoint ? { regionEndpoint: cfg.regionendpoint } : {}),
        ...(cfg.accesskey ? { accessKey: cfg.accesskey } : {}),
        ...(cfg.secretkey ? { secretKey: cfg.secretkey } : {}),
        ...(cfg.rootdirectory ? { rootDirectory: cfg.rootdirectory } : {}),
        ...(cfg.keyid ? { keyId: cfg.keyid } : {}),
      });
    case 'azure':
      return new AzureDriver({
        accountName: cfg.accountname, accountKey: cfg.accountkey, container: cfg.container, realm: cfg.realm,
        ...(cfg.serviceurl ? { serviceUrl: cfg.serviceurl } : {}),
        ...(cfg.rootdirectory ? { rootDirectory: cfg.rootdirectory } : {}),
      });
    case 'swift': {
      const optional = {
        tenant: cfg.tenant, tenantId: cfg.tenantid, domain: cfg.domain, domainId: cfg.domainid, tenantDomain: cfg.tenantdomain,
        tenantDomainId: cfg.tenantdomainid, trustId: cfg.trustid, region: cfg.region, endpointType: cfg.endpointtype,
        prefix: cfg.prefix, secretKey: cfg.secretkey,
      };
      return new SwiftDriver({
        authUrl: cfg.authurl, username: cfg.username, password: cfg.password, container: cfg.container,
        authVersion: cfg.authversion, chunkSize: cfg.chunksize, insecureSkipVerify: cfg.insecureskipverify,
        tempUrlContainerKey: cfg.tempurlcontainerkey, tempUrlMethods: cfg.tempurlmethods,
        ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined && v !== '')),
      });
    }
  }
}
