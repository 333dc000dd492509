// The broker store's in-memory write buffer: records written since the last lmdb commit,
// grouped by kind (a key's first part) so a range query scans only its own kind. A slot holds
// the decoded value, or REMOVED for a deletion lmdb has yet to see.
/** An lmdb key: its first part names the kind of record (store.ts lists the layout). */
export type Key = (string | number)[];

export const REMOVED = Symbol('removed');
/**
 * fresh: the key was absent from lmdb when this write was made (insert()), so removing it
 * again before a flush leaves nothing for lmdb to do.
 */
export type Slot = { readonly key: Key; readonly value: unknown; readonly fresh: boolean };

/**
 * Records by kind (the key's first part) and key id: writes not yet in lmdb. Grouping by kind
 * keeps a range query's scan to the records of its own kind.
 */
export class RecordBuffer {
  private readonly kinds = new Map<string, Map<string, Slot>>();
  private count = 0;

  size(): number {
    return this.count;
  }

  lookup(kind: string, id: string): Slot | undefined {
    return this.kinds.get(kind)?.get(id);
  }

  set(kind: string, id: string, slot: Slot): void {
    let records = this.kinds.get(kind);
    if (records === undefined) this.kinds.set(kind, (records = new Map()));
    if (!records.has(id)) this.count++;
    records.set(id, slot);
  }

  ofKind(kind: string): IterableIterator<[string, Slot]> {
    return (this.kinds.get(kind) ?? new Map<string, Slot>()).entries();
  }

  *all(): IterableIterator<[string, string, Slot]> {
    for (const [kind, records] of this.kinds) for (const [id, slot] of records) yield [kind, id, slot];
  }

  /** Moves every record of `other` into this buffer (later writes win). */
  absorb(other: RecordBuffer): void {
    for (const [kind, id, slot] of other.all()) {
      if (slot.value === REMOVED && slot.fresh) this.delete(kind, id);
      else this.set(kind, id, slot);
    }
  }

  private delete(kind: string, id: string): void {
    if (this.kinds.get(kind)?.delete(id) === true) this.count--;
  }

  clear(): void {
    this.kinds.clear();
    this.count = 0;
  }
}
