/**
 * The notification outbox: events waiting for delivery, one row per event and endpoint, in id
 * (insertion) order. Rows are added inside the transaction that records the content they describe
 * (the caller's MetadataIndex.transaction), removed once their endpoint has accepted them.
 */
import type Database from 'better-sqlite3';

export interface OutboxRow { id: number; event: string }

export class Outbox {
  private readonly stmts;

  constructor(db: Database.Database) {
    this.stmts = {
      add: db.prepare('INSERT INTO notify_outbox (endpoint, created_at, event) VALUES (?, ?, ?)'),
      peek: db.prepare<[string, number], OutboxRow>('SELECT id, event FROM notify_outbox WHERE endpoint = ? ORDER BY id LIMIT ?'),
      remove: db.prepare('DELETE FROM notify_outbox WHERE endpoint = ? AND id <= ?'),
      count: db.prepare<[string], number>('SELECT count(*) FROM notify_outbox WHERE endpoint = ?').pluck(),
      dropOldest: db.prepare('DELETE FROM notify_outbox WHERE id IN (SELECT id FROM notify_outbox WHERE endpoint = ? ORDER BY id LIMIT ?)'),
      endpoints: db.prepare<[], string>('SELECT DISTINCT endpoint FROM notify_outbox').pluck(),
      clear: db.prepare('DELETE FROM notify_outbox WHERE endpoint = ?'),
    };
  }

  add(endpoint: string, event: string): void { this.stmts.add.run(endpoint, Date.now(), event); }
  /** The oldest `limit` events of an endpoint. */
  peek(endpoint: string, limit: number): OutboxRow[] { return this.stmts.peek.all(endpoint, limit); }
  /** Removes an endpoint's events up to and including id (a delivered batch). */
  remove(endpoint: string, throughId: number): number { return this.stmts.remove.run(endpoint, throughId).changes; }
  count(endpoint: string): number { return this.stmts.count.get(endpoint) ?? 0; }
  /** Removes an endpoint's n oldest events (the outbox is full); returns how many went. */
  dropOldest(endpoint: string, n: number): number { return this.stmts.dropOldest.run(endpoint, n).changes; }
  /** Endpoints that have events waiting. */
  endpoints(): string[] { return this.stmts.endpoints.all(); }
  clear(endpoint: string): number { return this.stmts.clear.run(endpoint).changes; }
}
