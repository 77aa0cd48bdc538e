/** stowage version */
import { readFileSync } from 'node:fs';

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function run(): Promise<number> {
  process.stdout.write(`stowage ${version()}\n`);
  return 0;
}
