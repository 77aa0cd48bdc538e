/**
 * Where things live in storage: registry:2's (distribution's) layout, so a data directory written
 * by registry:2 is served by stowage as it is, and the other way round.
 *
 * <root>/docker/registry/v2/
 *   blobs/
 *     sha256/<first 2 hex>/<hex>/data                         blob bytes (layers, configs, manifests)
 *   repositories/
 *     <name>/                                                  may contain slashes: library/ubuntu
 *       _layers/sha256/<hex>/link                              "sha256:<hex>": blob is in this repo
 *       _manifests/
 *         revisions/sha256/<hex>/link                          manifest is in this repo
 *         tags/<tag>/current/link                              tag -> manifest digest
 *         tags/<tag>/index/sha256/<hex>/link                   every digest the tag has pointed to
 *       _uploads/<uuid>/
 *         data                                                 bytes received so far
 *         startedat                                            RFC 3339 start time
 *
 * The root ("<root>" above) is the driver's root; paths here start at "/docker".
 * Pure functions: no I/O.
 */
import { digestAlgorithm, digestHex, type Digest } from '../oci/digest.js';
import type { RepoName, Tag } from '../oci/reference.js';

export const V2_ROOT = '/docker/registry/v2';
export const BLOBS_ROOT = `${V2_ROOT}/blobs`;
export const REPOSITORIES_ROOT = `${V2_ROOT}/repositories`;

export function blobDir(d: Digest): string {
  const hex = digestHex(d);
  return `${BLOBS_ROOT}/${digestAlgorithm(d)}/${hex.slice(0, 2)}/${hex}`;
}
export const blobDataPath = (d: Digest): string => `${blobDir(d)}/data`;

export const repoPath = (name: RepoName): string => `${REPOSITORIES_ROOT}/${name}`;

export const layerLinkPath = (name: RepoName, d: Digest): string =>
  `${repoPath(name)}/_layers/${digestAlgorithm(d)}/${digestHex(d)}/link`;

export const manifestsDir = (name: RepoName): string => `${repoPath(name)}/_manifests`;
export const revisionsDir = (name: RepoName): string => `${manifestsDir(name)}/revisions`;
export const revisionLinkDir = (name: RepoName, d: Digest): string =>
  `${revisionsDir(name)}/${digestAlgorithm(d)}/${digestHex(d)}`;
export const revisionLinkPath = (name: RepoName, d: Digest): string => `${revisionLinkDir(name, d)}/link`;

export const tagsDir = (name: RepoName): string => `${manifestsDir(name)}/tags`;
export const tagDir = (name: RepoName, tag: Tag): string => `${tagsDir(name)}/${tag}`;
export const tagCurrentLinkPath = (name: RepoName, tag: Tag): string => `${tagDir(name, tag)}/current/link`;
export const tagIndexLinkPath = (name: RepoName, tag: Tag, d: Digest): string =>
  `${tagDir(name, tag)}/index/${digestAlgorithm(d)}/${digestHex(d)}/link`;

export const uploadsDir = (name: RepoName): string => `${repoPath(name)}/_uploads`;
export const uploadDir = (name: RepoName, uuid: string): string => `${uploadsDir(name)}/${uuid}`;
export const uploadDataPath = (name: RepoName, uuid: string): string => `${uploadDir(name, uuid)}/data`;
export const uploadStartedAtPath = (name: RepoName, uuid: string): string => `${uploadDir(name, uuid)}/startedat`;

/** Directory names that mark the inside of a repository (a name component never starts with "_"). */
export const REPO_MARKERS = new Set(['_layers', '_manifests', '_uploads']);

/**
 * Staging for blobs that arrive without a repository (`stowage import` verifies a bundle's blobs
 * before it knows their images): `_uploads` of a name no repository can have (components never
 * start with "_"), so listings and reindex pass it by while upload purging still cleans it.
 */
export const STAGING_REPO = '_staging' as RepoName;
