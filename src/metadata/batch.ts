/**
 * A write batch as recorded: the operations in order, and the changes they make for replicas'
 * caches. Both adapters record the same way and apply the list with a table of their own
 * (one entry per operation), so what a write invalidates is decided once, here.
 */
import { changeKey } from './changes.js';
import type { Change, ManifestRef, MetadataWriter, Origin, ReferrerRecord } from './port.js';

type Operations = Omit<MetadataWriter, 'changed'>;
export type OpName = keyof Operations;
export type WriteOp = { [K in OpName]: { op: K; args: Parameters<Operations[K]> } }[OpName];
/** How an adapter carries out each operation. */
export type OpTable<Ctx> = { [K in OpName]: (ctx: Ctx, ...args: Parameters<Operations[K]>) => void };

export class BatchRecorder implements MetadataWriter {
  readonly ops: WriteOp[] = [];
  private readonly changes = new Map<string, Change>();

  /** Each distinct change once, in the order first made. */
  changeList(): Change[] { return [...this.changes.values()]; }

  changed(change: Change): void { this.changes.set(changeKey(change), change); }

  private add<K extends OpName>(op: K, args: Parameters<Operations[K]>, ...changes: Change[]): void {
    this.ops.push({ op, args } as WriteOp);
    for (const c of changes) this.changed(c);
  }

  setMeta(key: string, value: string): void { this.add('setMeta', [key, value]); }
  addRepository(name: string): void { this.add('addRepository', [name]); }
  setTag(repo: string, tag: string, digest: string): void { this.add('setTag', [repo, tag, digest], { kind: 'tag', repo, tag }); }
  deleteTag(repo: string, tag: string): void { this.add('deleteTag', [repo, tag], { kind: 'tag', repo, tag }); }
  setManifestType(digest: string, mediaType: string): void { this.add('setManifestType', [digest, mediaType]); }
  addReferrer(r: ReferrerRecord): void { this.add('addReferrer', [r]); }
  deleteReferrer(repo: string, digest: string): void { this.add('deleteReferrer', [repo, digest]); }
  recordBlob(digest: string, size: number, origin: Origin, upstream?: string): void {
    this.add('recordBlob', upstream === undefined ? [digest, size, origin] : [digest, size, origin, upstream]);
  }
  deleteBlob(digest: string): void { this.add('deleteBlob', [digest], { kind: 'blob', digest }); }
  addUpload(uuid: string, repo: string, startedAt: number): void { this.add('addUpload', [uuid, repo, startedAt]); }
  deleteUpload(uuid: string): void { this.add('deleteUpload', [uuid]); }
  setTagCache(upstream: string, repo: string, tag: string, digest: string, mediaType: string, checkedAt: number): void {
    this.add('setTagCache', [upstream, repo, tag, digest, mediaType, checkedAt], { kind: 'tagcache', upstream, repo });
  }
  seedTagCache(upstream: string, repo: string, tag: string, digest: string, mediaType: string): void {
    this.add('seedTagCache', [upstream, repo, tag, digest, mediaType], { kind: 'tagcache', upstream, repo });
  }
  deleteTagCache(upstream: string, repo: string, tag: string): void {
    this.add('deleteTagCache', [upstream, repo, tag], { kind: 'tagcache', upstream, repo });
  }
  deleteTagCacheOf(upstream: string, repo: string, digest: string): void {
    this.add('deleteTagCacheOf', [upstream, repo, digest], { kind: 'tagcache', upstream, repo });
  }
  setNegative(upstream: string, repo: string, reference: string, expiresAt: number): void { this.add('setNegative', [upstream, repo, reference, expiresAt]); }
  clearNegative(upstream: string, repo: string, reference: string): void { this.add('clearNegative', [upstream, repo, reference]); }
  recordManifest(repo: string, manifest: string, origin: Origin, refs: readonly ManifestRef[]): void {
    this.add('recordManifest', [repo, manifest, origin, refs]);
  }
  removeManifestFrom(repo: string, manifest: string): void {
    this.add('removeManifestFrom', [repo, manifest], { kind: 'revision', repo, digest: manifest });
  }
  forgetManifestRefs(manifest: string): void { this.add('forgetManifestRefs', [manifest]); }
  markLocal(repo: string): void { this.add('markLocal', [repo], { kind: 'local', repo }); }
  addOutbox(endpoint: string, event: string): void { this.add('addOutbox', [endpoint, event], { kind: 'outbox', endpoint }); }
}
