// Types shared by the Raft core, the log store and the node layer.

export type NodeId = string;

/** What an entry carries. A noop is appended by every new leader so it can commit older-term entries. */
export const EntryType = Object.freeze({ Noop: 0, Normal: 1 } as const);
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  /** Position in the log, from 1, dense. */
  readonly index: number;
  /** Term of the leader that created the entry; never decreases along the log. */
  readonly term: number;
  readonly type: EntryType;
  /** Opaque to Raft: the broker's encoded command. Empty for a noop. */
  readonly data: Uint8Array;
}

/** What must be durable before a node acts on it (votes and term). */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
}

/** Fixed framing cost counted per entry when bounding batches and in-flight bytes. */
export const ENTRY_OVERHEAD_BYTES = 32;

export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** A snapshot of the state machine: it covers every entry up to `index`, whose term is `term`. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
}
