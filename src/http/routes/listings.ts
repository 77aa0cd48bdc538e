/** GET /v2/<name>/tags/list, GET /v2/_catalog and GET /v2/<name>/referrers/<digest>. */
import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../../errors.js';
import { MediaType } from '../../oci/media-types.js';
import type { Page } from '../../registry/registry.js';
import { queryParam, type Handler } from '../context.js';

const DEFAULT_PAGE = 1000;
const MAX_PAGE = 10_000;

function pagination(req: FastifyRequest): { n: number; last: string } {
  const nParam = queryParam(req, 'n');
  let n = DEFAULT_PAGE;
  if (nParam !== undefined && nParam !== '') {
    if (!/^\d+$/.test(nParam)) {
      throw new RegistryError('PAGINATION_NUMBER_INVALID', 'invalid number of results requested', { detail: { n: nParam.slice(0, 50) } });
    }
    n = Math.min(Number(nParam), MAX_PAGE);
  }
  return { n, last: queryParam(req, 'last') ?? '' };
}

function linkHeader(path: string, n: number, page: Page<string>): string | undefined {
  if (page.next === undefined) return undefined;
  return `<${path}?n=${n}&last=${encodeURIComponent(page.next)}>; rel="next"`;
}

export const listTags: Handler<'tags'> = async (req, reply, endpoint, { registry, proxy }) => {
  let name = endpoint.name;
  req.facts.repo = name;
  const { n, last } = pagination(req);
  // A repository that only exists as a cache of an upstream lists its cached tags.
  if (proxy && !(await registry.repositoryExists(name))) name = await proxy.tagsRepository(name, queryParam(req, 'ns'));
  const page = await registry.tags(name, n, last);
  if (page.items.length === 0 && last === '' && n > 0 && !(await registry.repositoryExists(name))) {
    throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { detail: { name } });
  }
  const link = linkHeader(`/v2/${endpoint.name}/tags/list`, n, page);
  if (link) reply.header('Link', link);
  return reply.type('application/json').send({ name: endpoint.name, tags: page.items });
};

export const catalog: Handler<'catalog'> = async (req, reply, _ep, { registry }) => {
  const { n, last } = pagination(req);
  const access = req.access;
  const page = access ? await visiblePage(n, last, (l, m) => registry.catalog(m, l), access.mayPull) : await registry.catalog(n, last);
  const link = linkHeader('/v2/_catalog', n, page);
  if (link) reply.header('Link', link);
  return reply.type('application/json').send({ repositories: page.items });
};

export const referrers: Handler<'referrers'> = async (req, reply, { name, digest }, { registry, proxy }) => {
  req.facts.repo = name;
  req.facts.reference = digest;
  const artifactType = queryParam(req, 'artifactType');
  const manifests = proxy
    ? await proxy.referrers(name, digest, queryParam(req, 'ns'), artifactType)
    : await registry.referrers(name, digest, artifactType);
  if (artifactType !== undefined) reply.header('OCI-Filters-Applied', 'artifactType');
  // Sent as bytes so fastify adds no charset parameter to the OCI media type.
  return reply.type(MediaType.OciIndex).send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests })));
};

/**
 * A page of `n` names the caller may see, reading the underlying pages until it has them (a
 * filtered page may otherwise come back empty with a next link). `next` is the last name looked
 * at, so the following page starts after everything this one skipped.
 */
async function visiblePage(n: number, last: string, read: (last: string, n: number) => Promise<Page<string>>, visible: (name: string) => boolean): Promise<Page<string>> {
  if (n === 0) return { items: [] };
  const items: string[] = [];
  let cursor = last;
  for (;;) {
    const page = await read(cursor, Math.max(n, 100));
    for (const name of page.items) {
      cursor = name;
      if (!visible(name)) continue;
      items.push(name);
      if (items.length === n) return page.next === undefined && name === page.items[page.items.length - 1] ? { items } : { items, next: name };
    }
    if (page.next === undefined) return { items };
    cursor = page.next;
  }
}
