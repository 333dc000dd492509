// Durable Raft hard state (current term and vote) in lmdb under <dataDir>/meta. Raft must
// never act on a term or vote before it is on disk, so save() resolves only once lmdb has
// flushed the commit.
//
// Storage mode `lazy` (power-loss chaos runs, see file-io.ts): lmdb writes and fsyncs a commit
// in one step that cannot be split, so a SIGKILL after lmdb's write but before its fsync keeps
// a save a power cut could lose. Lazy mode widens that gap honestly instead: a save is held in
// this process's memory for the time of one real fdatasync on this disk, and only then handed
// to lmdb. A kill before then loses it, as a power cut before lmdb's fsync would; a kill during
// lmdb's commit may keep it — as a power cut may. Either way save() has not resolved, so Raft
// has not acted on it. lmdb's own pages are not modeled (lmdb is crash-safe given a real fsync).
import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { type RootDatabase, open } from 'lmdb';
import type { HardState } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import type { StorageMode } from './file-io.js';

const HARD_STATE_KEY = 'hardState';
const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: null });

function isHardState(value: unknown): value is HardState {
  if (typeof value !== 'object' || value === null) return false;
  const { term, vote } = value as Record<string, unknown>;
  return Number.isSafeInteger(term) && (term as number) >= 0 && (vote === null || typeof vote === 'string');
}

export class HardStateStore {
  /** Last state saved (or loaded): saves must move forward from it. */
  private current: HardState;
  /** Lazy mode: the saves held or being written, in save order. */
  private lazyQueue: Promise<void> = Promise.resolve();

  private constructor(
    private readonly db: RootDatabase,
    private readonly path: string,
    /** Lazy mode: the file whose fdatasync times how long a save is held before lmdb sees it. */
    private readonly lazySyncFd: number | null,
  ) {
    this.current = this.load();
  }

  /** Opens (creating) the store in dir. */
  static open(dir: string, storage: StorageMode = 'os'): HardStateStore {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'hard-state.mdb');
    const lazySyncFd = storage === 'lazy' ? openSync(join(dir, 'lazy-sync'), 'w') : null;
    return new HardStateStore(open({ path, encoding: 'msgpack' }), path, lazySyncFd);
  }

  /** The saved hard state; {term: 0, vote: null} for a new node. Throws LmqError(LMQ_CORRUPT_DATA) on a malformed record. */
  load(): HardState {
    const stored: unknown = this.db.get(HARD_STATE_KEY);
    if (stored === undefined) return EMPTY_HARD_STATE;
    if (!isHardState(stored)) {
      throw new LmqError('LMQ_CORRUPT_DATA', `hard state in ${this.path} is corrupt (${JSON.stringify(stored)}); restore this node's data directory from a healthy replica`);
    }
    return Object.freeze({ term: stored.term, vote: stored.vote });
  }

  /**
   * Saves the hard state; durable when the promise resolves. Raft's rules are asserted: the
   * term never decreases, and within a term a vote once cast never changes.
   */
  save(hardState: HardState): Promise<void> {
    assert(isHardState(hardState), () => `malformed hard state ${JSON.stringify(hardState)}`);
    const previous = this.current;
    assert(hardState.term >= previous.term, () => `term moves back from ${previous.term} to ${hardState.term}`);
    assert(
      hardState.term > previous.term || previous.vote === null || hardState.vote === previous.vote,
      () => `vote in term ${hardState.term} changes from ${String(previous.vote)} to ${String(hardState.vote)}`,
    );
    this.current = Object.freeze({ term: hardState.term, vote: hardState.vote });
    return this.persist(this.current);
  }

  private persist(hardState: HardState): Promise<void> {
    const fd = this.lazySyncFd;
    if (fd === null) return this.write(hardState);
    // In order: fdatasync callbacks may come back out of order, and an older state must never
    // overwrite a newer one.
    const saved = this.lazyQueue.then(() => fdatasyncPromise(fd)).then(() => this.write(hardState));
    this.lazyQueue = saved.catch(() => undefined);
    return saved;
  }

  private async write(hardState: HardState): Promise<void> {
    await this.db.put(HARD_STATE_KEY, { term: hardState.term, vote: hardState.vote });
    await this.db.flushed;
  }

  async close(): Promise<void> {
    await this.lazyQueue;
    await this.db.flushed;
    await this.db.close();
    if (this.lazySyncFd !== null) closeSync(this.lazySyncFd);
  }
}

function fdatasyncPromise(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error === null ? resolve() : reject(error))));
}
