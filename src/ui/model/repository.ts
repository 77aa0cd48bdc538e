/** One repository: its tags with digest, size, platforms, origin, pulls, and how to pull each. */
import type { RepositorySummary, TagRecord } from '../../metadata/browse.js';
import type { Viewer } from '../access.js';
import { pullCommands, type Endpoint, type ImageRoute, type PullCommand } from '../pull-commands.js';
import { upstreamOf, type UiContext } from './context.js';
import { platformsOf } from './describe.js';
import { bytesOf, imageParts, sizesOf } from './parts.js';
import { groupOf } from './repositories.js';

export interface TagView extends TagRecord {
  /** Stored bytes of everything the tag's image consists of (all platforms). */
  bytes: number;
  /** Parts of the image not stored here (a cached platform or layer never pulled). */
  missing: number;
  platforms: string[];
  pull: PullCommand[];
}

export interface RepositoryView {
  repository: RepositorySummary;
  group: string;
  /** For cached repositories: the upstream and the repository's name there. */
  upstream?: { name: string; remoteRepo: string };
  tags: TagView[];
  next?: string;
  /** The viewer may delete tags and manifests here (and deletes are enabled). */
  mayDelete: boolean;
}

export function imageRoute(ctx: UiContext, repo: string, ref: string): ImageRoute {
  const upstream = upstreamOf(ctx, repo);
  if (!upstream) return { repo, ref };
  return { repo, ref, upstream: { name: upstream, remoteRepo: repo.slice(upstream.length + 1), isDefault: ctx.config.defaultUpstream === upstream } };
}

export async function repositoryView(ctx: UiContext, viewer: Viewer, name: string, at: Endpoint, page: { after?: string; limit: number }): Promise<RepositoryView | undefined> {
  if (!viewer.mayPull(name)) return undefined;
  const [repository] = await ctx.browse.repositorySummaries([name]);
  if (!repository) return undefined;
  const rows = await ctx.browse.tags(name, page.after ?? '', page.limit + 1);
  const tags = rows.slice(0, page.limit);
  const digests = [...new Set(tags.map((t) => t.digest))];
  const parts = await imageParts(ctx.browse, digests);
  const sizes = await sizesOf(ctx.browse, [...parts.values()].flatMap((s) => [...s]));
  const platforms = await platformsOf(ctx, digests);
  const upstream = upstreamOf(ctx, name);
  return {
    repository,
    group: groupOf(ctx, name),
    ...(upstream ? { upstream: { name: upstream, remoteRepo: name.slice(upstream.length + 1) } } : {}),
    tags: tags.map((t) => ({
      ...t, ...bytesOf(parts.get(t.digest) ?? [], sizes), platforms: platforms.get(t.digest) ?? [],
      pull: pullCommands(at, imageRoute(ctx, name, `:${t.tag}`)),
    })),
    ...(rows.length > page.limit ? { next: tags[tags.length - 1]!.tag } : {}),
    mayDelete: viewer.mayDelete(name),
  };
}
