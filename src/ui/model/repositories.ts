/**
 * The repository list: grouped by where content comes from (pushed here, or each upstream's
 * cache repositories), searchable by name, paged by name. Without access rules or auth the
 * index pages and counts; with them every name is checked (auth/decide.ts) and a page is filled
 * from as many index pages as it takes, so what a viewer may not pull is never listed or counted.
 */
import type { NameFilter, RepositorySummary } from '../../metadata/browse.js';
import type { Viewer } from '../access.js';
import { usageTotals, type UiContext } from './context.js';

export const LOCAL_GROUP = 'local';
const SCAN_BATCH = 1000;

export interface RepositoryGroup {
  /** 'local', or the upstream's name. */
  key: string;
  label: string;
  /** Repositories in the group the viewer may see. */
  repositories: number;
  /** Stored bytes of the group's blobs (pushed, or cached from that upstream). */
  bytes: number;
}

export interface RepositoryListItem extends RepositorySummary { group: string }

export interface RepositoryList {
  groups: RepositoryGroup[];
  group: string | undefined;
  search: string | undefined;
  items: RepositoryListItem[];
  /** Repositories matching the group and search (that the viewer may see). */
  total: number;
  /** The `after` of the next page, when there is one. */
  next?: string;
}

export interface ListQuery { group?: string; search?: string; after?: string; limit: number }

function prefixes(ctx: UiContext): string[] {
  return (ctx.router?.upstreams ?? []).map((u) => `${u.config.name}/`);
}

function filterFor(ctx: UiContext, group: string | undefined, search: string | undefined): NameFilter {
  const f: NameFilter = {};
  if (group === LOCAL_GROUP) f.notPrefixes = prefixes(ctx);
  else if (group !== undefined) f.prefix = `${group}/`;
  if (search) f.search = search;
  return f;
}

/** How many names matching filter the viewer may see. */
async function countVisible(ctx: UiContext, viewer: Viewer, filter: NameFilter): Promise<number> {
  if (!viewer.restricted) return ctx.browse.countRepositories(filter);
  let n = 0;
  let after = '';
  for (;;) {
    const names = await ctx.browse.repositoryNames(filter, after, SCAN_BATCH);
    for (const name of names) if (viewer.mayPull(name)) n++;
    if (names.length < SCAN_BATCH) return n;
    after = names[names.length - 1]!;
  }
}

/** Up to `limit + 1` visible names after `after` (the extra one says a next page exists). */
async function visibleNames(ctx: UiContext, viewer: Viewer, filter: NameFilter, after: string, limit: number): Promise<string[]> {
  if (!viewer.restricted) return ctx.browse.repositoryNames(filter, after, limit + 1);
  const out: string[] = [];
  const batch = Math.max(limit * 4, 200);
  for (;;) {
    const names = await ctx.browse.repositoryNames(filter, after, batch);
    for (const name of names) {
      if (viewer.mayPull(name)) out.push(name);
      if (out.length > limit) return out;
    }
    if (names.length < batch) return out;
    after = names[names.length - 1]!;
  }
}

export function groupOf(ctx: UiContext, name: string): string {
  return prefixes(ctx).find((p) => name.startsWith(p))?.slice(0, -1) ?? LOCAL_GROUP;
}

export async function listRepositories(ctx: UiContext, viewer: Viewer, q: ListQuery): Promise<RepositoryList> {
  const usage = await usageTotals(ctx);
  const bytesWhere = (origin: string, upstream: string | null) =>
    usage.filter((u) => u.origin === origin && (upstream === null || u.upstream === upstream)).reduce((n, u) => n + u.bytes, 0);
  const keys = [LOCAL_GROUP, ...(ctx.router?.upstreams ?? []).map((u) => u.config.name)];
  const groups: RepositoryGroup[] = [];
  for (const key of keys) {
    groups.push({
      key,
      label: key === LOCAL_GROUP ? 'Pushed here' : key,
      repositories: await countVisible(ctx, viewer, filterFor(ctx, key, q.search)),
      bytes: key === LOCAL_GROUP ? bytesWhere('local', null) : bytesWhere('cached', key),
    });
  }
  const group = q.group !== undefined && keys.includes(q.group) ? q.group : undefined;
  const filter = filterFor(ctx, group, q.search);
  const names = await visibleNames(ctx, viewer, filter, q.after ?? '', q.limit);
  const page = names.slice(0, q.limit);
  const summaries = await ctx.browse.repositorySummaries(page);
  const total = group === undefined ? groups.reduce((n, g) => n + g.repositories, 0) : groups.find((g) => g.key === group)!.repositories;
  return {
    groups, group, search: q.search, total,
    items: summaries.map((s) => ({ ...s, group: groupOf(ctx, s.name) })),
    ...(names.length > q.limit ? { next: page[page.length - 1]! } : {}),
  };
}
