/** Picks the StorageDriver for the configured backend. */
import type { StorageConfig } from '../../config/schema.js';
import type { StorageDriver } from '../driver.js';
import { FilesystemDriver } from './filesystem.js';
import { MemoryDriver } from './memory.js';

export function createDriver(cfg: StorageConfig): StorageDriver {
  switch (cfg.driver) {
    case 'filesystem':
      return new FilesystemDriver({ rootDirectory: cfg.rootdirectory });
    case 'inmemory':
      return new MemoryDriver();
  }
}
