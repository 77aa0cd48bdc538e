/**
 * Pinned images: never evicted. Patterns name cache repositories and tags with globs
 * ("docker.io/library/alpine:3.*", "ghcr.io/org/*", "docker.io/library/node@sha256:..."): the
 * config's cache.pin plus what `stowage prefetch --pin` recorded in the index (read each time,
 * so a pin added beside a running server counts at its next eviction).
 */
import picomatch from 'picomatch';
import type { MetadataIndex } from '../metadata/port.js';

const PINS_KEY = 'pins';

interface Matcher { repo: (s: string) => boolean; tag?: (s: string) => boolean; digest?: string }

function compile(pattern: string): Matcher {
  const at = pattern.indexOf('@');
  if (at >= 0) return { repo: picomatch(pattern.slice(0, at)), digest: pattern.slice(at + 1) };
  const colon = pattern.lastIndexOf(':');
  if (colon > pattern.lastIndexOf('/')) return { repo: picomatch(pattern.slice(0, colon)), tag: picomatch(pattern.slice(colon + 1)) };
  return { repo: picomatch(pattern) };
}

export class Pins {
  private readonly configured: Matcher[];

  constructor(patterns: readonly string[], private readonly metadata: MetadataIndex) {
    this.configured = patterns.map(compile);
  }

  async recorded(): Promise<string[]> {
    try {
      const v = JSON.parse((await this.metadata.getMeta(PINS_KEY)) ?? '[]') as unknown;
      return Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string') : [];
    } catch {
      return [];
    }
  }

  async add(pattern: string): Promise<void> {
    const all = new Set(await this.recorded());
    all.add(pattern);
    await this.metadata.write((w) => w.setMeta(PINS_KEY, JSON.stringify([...all].sort())));
  }

  /** A snapshot of every pin, for one eviction pass. */
  async matcher(): Promise<(repo: string, tags: readonly string[], digest: string) => boolean> {
    const all = [...this.configured, ...(await this.recorded()).map(compile)];
    return (repo, tags, digest) => all.some((m) => m.repo(repo) && (m.digest !== undefined ? m.digest === digest
      : m.tag ? tags.some((t) => m.tag!(t)) : true));
  }
}
