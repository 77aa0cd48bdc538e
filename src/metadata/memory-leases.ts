/**
 * Leases for one server process (the SQLite adapter). They live in memory on purpose: one server
 * per SQLite file is the rule, and a lease left in the file by a process that was killed would
 * keep its restarted self from delivering notifications or evicting until it expired. The CLI
 * tools that open the same file beside the server take no leases.
 */
import type { LeaseStore } from './port.js';

export class MemoryLeases implements LeaseStore {
  private readonly held = new Map<string, { holder: string; expiresAt: number }>();

  async acquire(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const cur = this.held.get(name);
    if (cur && cur.holder !== holder && cur.expiresAt >= now) return false;
    this.held.set(name, { holder, expiresAt: now + ttlMs });
    return true;
  }

  async release(name: string, holder: string): Promise<void> {
    if (this.held.get(name)?.holder === holder) this.held.delete(name);
  }

  async holder(name: string): Promise<string | undefined> {
    const cur = this.held.get(name);
    return cur && cur.expiresAt >= Date.now() ? cur.holder : undefined;
  }
}
