/**
 * Which images an export (or prefetch) is about: named ones, every tag, tags of repositories
 * matching a glob, or the images actually pulled since a time, from the access records
 * ("export what CI used this week"). Names are resolved the way clients' requests are: a local
 * repository by its name, anything else through the upstream routes to its cache repository
 * ("alpine:3.20" -> "docker.io/library/alpine:3.20").
 */
import picomatch from 'picomatch';
import type { MetadataIndex } from '../metadata/port.js';
import { parseManifest } from '../oci/manifest.js';
import type { Digest } from '../oci/digest.js';
import type { RepoName, Tag } from '../oci/reference.js';
import type { UpstreamRouter } from '../proxy/routing.js';
import type { LocalRegistry } from '../registry/registry.js';
import { parseImageName, type ImageName } from './layout.js';

export interface SelectedImage {
  name: ImageName;
  /** The upstream this repository caches, when it is a cache repository. */
  upstream?: string;
}

export interface Selection { images: SelectedImage[]; unknown: string[] }

export interface SelectSpec { images?: string[]; all?: boolean; repositories?: string[]; since?: number }

export class ImageSelector {
  constructor(
    private readonly registry: LocalRegistry,
    private readonly metadata: MetadataIndex,
    private readonly router: UpstreamRouter | undefined,
  ) {}

  /** The upstream whose cache repository `repo` is, if any. */
  upstreamOf(repo: string): string | undefined {
    const first = repo.slice(0, repo.indexOf('/'));
    return this.router?.upstreams.find((u) => u.config.name === first)?.config.name;
  }

  /** A name as a user types it -> where it is stored; undefined when it is not a reference. */
  async resolve(text: string): Promise<SelectedImage | undefined> {
    const parsed = parseImageName(text);
    if (!parsed) return undefined;
    const name: ImageName = parsed.tag === undefined && parsed.digest === undefined ? { ...parsed, tag: 'latest' as Tag } : parsed;
    if (this.upstreamOf(name.repo) || await this.registry.repositoryExists(name.repo)) return this.make(name);
    const route = this.router?.route(name.repo, undefined);
    return this.make(route ? { ...name, repo: route.cacheRepo } : name);
  }

  private make(name: ImageName): SelectedImage {
    const upstream = this.upstreamOf(name.repo);
    return upstream ? { name, upstream } : { name };
  }

  private async *repositories(): AsyncGenerator<RepoName> {
    let last = '';
    for (;;) {
      const page = await this.metadata.catalog(last, 500);
      for (const r of page) yield r as RepoName;
      if (page.length < 500) return;
      last = page[page.length - 1]!;
    }
  }

  private async *tagsOf(repo: RepoName): AsyncGenerator<Tag> {
    let last = '';
    for (;;) {
      const page = await this.metadata.listTags(repo, last, 500);
      for (const t of page) yield t as Tag;
      if (page.length < 500) return;
      last = page[page.length - 1]!;
    }
  }

  async select(spec: SelectSpec): Promise<Selection> {
    const out = new Map<string, SelectedImage>();
    const unknown: string[] = [];
    const add = (s: SelectedImage) => out.set(`${s.name.repo}:${s.name.tag ?? ''}@${s.name.digest ?? ''}`, s);
    for (const text of spec.images ?? []) {
      const s = await this.resolve(text);
      if (s) add(s); else unknown.push(text);
    }
    const globs = (spec.repositories ?? []).map((g) => picomatch(g));
    const accessed = spec.since === undefined ? undefined : new Set(await this.metadata.manifestsAccessedSince(spec.since));
    if (spec.all || globs.length > 0 || accessed) {
      for await (const repo of this.repositories()) {
        if (!spec.all && globs.length > 0 && !globs.some((m) => m(repo))) continue;
        for await (const tag of this.tagsOf(repo)) {
          const image = this.make({ repo, tag });
          if (accessed && !(await this.usedSince(repo, tag, accessed))) continue;
          add(image);
        }
      }
    }
    return { images: [...out.values()], unknown };
  }

  /** Whether the tag's manifest, or one of its children (the platform a client pulled), was read. */
  private async usedSince(repo: RepoName, tag: Tag, accessed: Set<string>): Promise<boolean> {
    const digest = await this.registry.manifests.resolve(repo, { kind: 'tag', tag });
    if (!digest) return false;
    if (accessed.has(digest)) return true;
    const m = await this.registry.manifests.load(digest);
    if (!m) return false;
    try {
      return parseManifest(m.bytes).manifests.some((c) => accessed.has(c.digest as Digest));
    } catch {
      return false;
    }
  }
}
