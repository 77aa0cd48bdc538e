/** Picks the StorageDriver for the configured backend. */
import type { StorageConfig } from '../../config/schema.js';
import type { StorageDriver } from '../driver.js';
import { FilesystemDriver } from './filesystem.js';
import { MemoryDriver } from './memory.js';

export function createDriver(cfg: StorageConfig, events: { onFull?: () => void } = {}): StorageDriver {
  switch (cfg.driver) {
    case 'filesystem':
      return new FilesystemDriver({ rootDirectory: cfg.rootdirectory, ...(events.onFull ? { onFull: events.onFull } : {}) });
    case 'inmemory':
      return new MemoryDriver();
  }
}
