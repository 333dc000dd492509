// Streaming a snapshot to a follower (the data half of InstallSnapshot; the Raft core handles
// only its metadata). The leader's core asks for a snapshot to be sent; the sender here reads
// the snapshot package (the state machine's snapshot and the retained log up to it) in chunks
// of at most maxChunkBytes, with at most maxInflightBytes not yet acknowledged, and resumes
// where the follower says it stands: after a lost chunk, a reconnect or a restart of the
// transfer. The receiver stages chunks in order, verifies the whole package's checksum, and
// only then hands its core the InstallSnapshot message — nothing is replaced before that.
//
// Chunks travel over the same peer link as Raft messages and are checked field by field when
// they arrive (validateTransferMessage), like every message off the wire.
import { createHash } from 'node:crypto';
import type { NodeId, SnapshotMeta } from '../raft/types.js';
import { isIndex, isTerm } from '../raft/messages.js';
import { assert } from '../util/assert.js';
import type { Failed } from './ports.js';

export interface SnapshotChunk {
  readonly type: 'snapshotChunk';
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sending leader's term. */
  readonly term: number;
  readonly index: number;
  readonly snapshotTerm: number;
  /** The whole package: its size and checksum, so the receiver can stage and verify it. */
  readonly totalBytes: number;
  readonly checksum: string;
  readonly offsetBytes: number;
  readonly data: Uint8Array;
}

export interface SnapshotChunkAck {
  readonly type: 'snapshotAck';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly index: number;
  readonly snapshotTerm: number;
  /** Bytes of the package the follower has staged: the sender continues from here. */
  readonly stagedBytes: number;
  /** The chunk started past stagedBytes (one before it was lost): the sender goes back. */
  readonly gap: boolean;
}

export type TransferMessage = SnapshotChunk | SnapshotChunkAck;

/**
 * A package checksum is a hex SHA-256: exactly this, since it also names the staging file (a
 * free-form string from a peer would be a path).
 */
const CHECKSUM_PATTERN = /^[0-9a-f]{64}$/;

/** A byte count or offset within a package. */
const isByteCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** A transfer message decoded off the wire, checked field by field; null when malformed. */
export function validateTransferMessage(value: unknown, tuning: Pick<TransferTuning, 'maxChunkBytes' | 'maxPackageBytes'>): TransferMessage | null {
  if (typeof value !== 'object' || value === null) return null;
  const m = value as Record<string, unknown>;
  if (typeof m.from !== 'string' || typeof m.to !== 'string' || !isTerm(m.term) || !isIndex(m.index) || m.index < 1) return null;
  // The snapshot's last entry is of a term the leader has lived through.
  if (!isTerm(m.snapshotTerm) || m.snapshotTerm < 1 || m.snapshotTerm > m.term) return null;
  if (m.type === 'snapshotAck') return isByteCount(m.stagedBytes) && typeof m.gap === 'boolean' ? (value as TransferMessage) : null;
  if (m.type !== 'snapshotChunk') return null;
  if (!isByteCount(m.totalBytes) || !isByteCount(m.offsetBytes) || !(m.data instanceof Uint8Array)) return null;
  if (typeof m.checksum !== 'string' || !CHECKSUM_PATTERN.test(m.checksum)) return null;
  if (m.data.byteLength > tuning.maxChunkBytes || m.totalBytes > tuning.maxPackageBytes || m.offsetBytes + m.data.byteLength > m.totalBytes) return null;
  return value as TransferMessage;
}

export function isTransferMessage(value: unknown): boolean {
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  return type === 'snapshotChunk' || type === 'snapshotAck';
}

/** A snapshot package opened for streaming (leader side). */
export interface SnapshotPackage {
  readonly meta: SnapshotMeta;
  readonly totalBytes: number;
  readonly checksum: string;
  /** Reads [offsetBytes, offsetBytes + maxBytes) clipped to the end. */
  read(offsetBytes: number, maxBytes: number, done: (data: Uint8Array) => void, failed: Failed): void;
  close(): void;
}

/**
 * The node's snapshots as the transfer needs them: the newest one, packages of it to stream,
 * a staging area for one incoming package, and its install. The simulator's twin is
 * MemorySnapshotStore; a failed call is fatal unless it says otherwise.
 */
export interface DriverSnapshotStore {
  /** The newest durable snapshot, or null (the core's SnapshotReader). */
  latest(): SnapshotMeta | null;
  /** Opens the package of snapshot `meta`; opened(null) when that snapshot is gone (a newer one replaced it). */
  openPackage(meta: SnapshotMeta, opened: (pkg: SnapshotPackage | null) => void, failed: Failed): void;
  /**
   * Bytes staged so far of the package (meta, totalBytes, checksum); a staging of any other
   * package is discarded first, so the answer is 0 for a new one. null: the package is refused
   * (no room for it); its chunks go unanswered and the sender gives up and retries later.
   */
  staged(meta: SnapshotMeta, totalBytes: number, checksum: string): number | null;
  /** Appends a chunk at exactly staged() bytes. */
  stage(data: Uint8Array, done: () => void, failed: Failed): void;
  /** Whether the staged package is complete and its checksum matches (a mismatch discards it). */
  verifyStaged(verified: (ok: boolean) => void, failed: Failed): void;
  /** Replaces the log and the state machine with the verified staged package, durably. */
  install(meta: SnapshotMeta, done: () => void, failed: Failed): void;
  /** Forgets the staging (the core did not need it). */
  discardStaged(): void;
}

export interface TransferTuning {
  readonly maxChunkBytes: number;
  /** Largest package a peer may announce; larger announcements are refused as malformed. */
  readonly maxPackageBytes: number;
  readonly maxInflightBytes: number;
  /** No acknowledgement for this many ticks: resend from what the follower last acknowledged. */
  readonly resendAfterTicks: number;
  /** No progress for this many ticks: give up (the core probes again and asks anew). */
  readonly abandonAfterTicks: number;
}

interface Session {
  readonly meta: SnapshotMeta;
  readonly term: number;
  pkg: SnapshotPackage | null;
  /** Next byte to send, and bytes the follower acknowledged staging. */
  sentBytes: number;
  ackedBytes: number;
  reading: boolean;
  lastProgressTick: number;
  lastAckTick: number;
  closed: boolean;
}

export interface TransferHooks {
  readonly id: NodeId;
  send(to: NodeId, message: TransferMessage): void;
  /** The sending side gave up on `peer`. */
  failed(peer: NodeId): void;
  fatal(error: unknown): void;
}

/** Leader side: one session per follower being sent a snapshot. */
export class SnapshotSender {
  private readonly sessions = new Map<NodeId, Session>();
  private tickCount = 0;

  constructor(
    private readonly store: DriverSnapshotStore,
    private readonly tuning: TransferTuning,
    private readonly hooks: TransferHooks,
  ) {
    assert(tuning.maxChunkBytes >= 1 && tuning.maxInflightBytes >= tuning.maxChunkBytes, 'a chunk fits the in-flight window');
    assert(tuning.resendAfterTicks >= 1 && tuning.abandonAfterTicks > tuning.resendAfterTicks, 'the transfer gives up only after resending');
  }

  /** The core asked to send snapshot `meta` to `peer` in `term`; an identical session continues. */
  start(peer: NodeId, term: number, meta: SnapshotMeta): void {
    const current = this.sessions.get(peer);
    if (current !== undefined && current.term === term && current.meta.index === meta.index && current.meta.term === meta.term) return;
    if (current !== undefined) this.close(peer, current);
    const session: Session = { meta, term, pkg: null, sentBytes: 0, ackedBytes: 0, reading: true, lastProgressTick: this.tickCount, lastAckTick: this.tickCount, closed: false };
    this.sessions.set(peer, session);
    this.store.openPackage(meta, (pkg) => {
      if (session.closed) return pkg?.close();
      session.reading = false;
      if (pkg === null) {
        this.close(peer, session);
        return this.hooks.failed(peer);
      }
      session.pkg = pkg;
      this.pump(peer, session);
    }, (error) => this.hooks.fatal(error));
  }

  /** Ends every session the core no longer wants (stillWanted says which). */
  retain(stillWanted: (peer: NodeId, meta: SnapshotMeta, term: number) => boolean): void {
    for (const [peer, session] of this.sessions) if (!stillWanted(peer, session.meta, session.term)) this.close(peer, session);
  }

  acknowledged(ack: SnapshotChunkAck): void {
    const session = this.sessions.get(ack.from);
    if (session === undefined || session.term !== ack.term || session.meta.index !== ack.index || session.meta.term !== ack.snapshotTerm) return;
    session.lastAckTick = this.tickCount;
    if (ack.stagedBytes > session.ackedBytes) {
      session.ackedBytes = ack.stagedBytes;
      session.lastProgressTick = this.tickCount;
    } else if (ack.stagedBytes < session.ackedBytes) {
      // It started over (a restart lost its staging, or the checksum failed): so do we, after
      // the resend delay — a link that corrupts data is not hammered.
      session.ackedBytes = session.sentBytes = ack.stagedBytes;
      return;
    }
    // A chunk was lost: send again from where the follower stands. (Duplicates are answered
    // without `gap`, so they cause no resend of their own.)
    if (ack.gap && ack.stagedBytes < session.sentBytes) session.sentBytes = ack.stagedBytes;
    this.pump(ack.from, session);
  }

  tick(): void {
    this.tickCount++;
    for (const [peer, session] of this.sessions) {
      if (this.tickCount - session.lastProgressTick >= this.tuning.abandonAfterTicks) {
        this.close(peer, session);
        this.hooks.failed(peer);
        continue;
      }
      if (this.tickCount - session.lastAckTick >= this.tuning.resendAfterTicks) {
        // Chunks or their acknowledgements were lost: send again from the last one acknowledged.
        session.lastAckTick = this.tickCount;
        session.sentBytes = session.ackedBytes;
        this.pump(peer, session);
      }
    }
  }

  /** Sessions in progress (status and tests). */
  activeCount(): number {
    return this.sessions.size;
  }

  closeAll(): void {
    for (const [peer, session] of this.sessions) this.close(peer, session);
  }

  private pump(peer: NodeId, session: Session): void {
    const pkg = session.pkg;
    if (session.closed || session.reading || pkg === null) return;
    // Everything sent and acknowledged: the core hears of the install from the follower's appendResp.
    if (session.sentBytes >= pkg.totalBytes && session.ackedBytes >= pkg.totalBytes) return;
    if (session.sentBytes >= pkg.totalBytes || session.sentBytes - session.ackedBytes + 1 > this.tuning.maxInflightBytes) return;
    const offsetBytes = session.sentBytes;
    session.reading = true;
    pkg.read(offsetBytes, this.tuning.maxChunkBytes, (data) => {
      session.reading = false;
      if (session.closed) return;
      assert(data.byteLength > 0 || pkg.totalBytes === 0, 'a read inside the package returns bytes');
      this.hooks.send(peer, {
        type: 'snapshotChunk', from: this.hooks.id, to: peer, term: session.term, index: session.meta.index, snapshotTerm: session.meta.term,
        totalBytes: pkg.totalBytes, checksum: pkg.checksum, offsetBytes, data,
      });
      session.sentBytes = Math.max(session.sentBytes, offsetBytes + data.byteLength);
      if (data.byteLength > 0) this.pump(peer, session);
    }, (error) => this.hooks.fatal(error));
  }

  private close(peer: NodeId, session: Session): void {
    session.closed = true;
    session.pkg?.close();
    if (this.sessions.get(peer) === session) this.sessions.delete(peer);
  }
}

/** What the receiver hands the driver once a package is staged and verified. */
export interface StagedSnapshot {
  readonly from: NodeId;
  readonly term: number;
  readonly meta: SnapshotMeta;
}

/** Chunks held while one is being staged; more are dropped (the sender resends). */
const MAX_QUEUED_CHUNKS = 64;

/**
 * Follower side: stages one package at a time, in order, and reports it when verified. A
 * chunk of another package (another snapshot, or a newer leader's) starts the staging over.
 */
export class SnapshotReceiver {
  private busy = false;
  private readonly queue: SnapshotChunk[] = [];
  /** A verified package waits for the driver to install or discard it: chunks are dropped meanwhile. */
  private holding = false;

  constructor(
    private readonly store: DriverSnapshotStore,
    private readonly hooks: TransferHooks,
    private readonly currentTerm: () => number,
    private readonly complete: (staged: StagedSnapshot) => void,
  ) {}

  /** The driver installed or discarded the verified package: staging may start again. */
  release(): void {
    this.holding = false;
  }

  receive(chunk: SnapshotChunk): void {
    if (this.holding) return; // the sender resends once we answer again
    if (this.busy) {
      if (this.queue.length < MAX_QUEUED_CHUNKS) this.queue.push(chunk);
      return;
    }
    this.handle(chunk);
  }

  private handle(chunk: SnapshotChunk): void {
    // A deposed leader's chunks are ignored; its next heartbeat tells it about the newer term.
    if (chunk.term < this.currentTerm()) return this.next();
    const meta = { index: chunk.index, term: chunk.snapshotTerm };
    const staged = this.store.staged(meta, chunk.totalBytes, chunk.checksum);
    if (staged === null) return this.next();
    const ack = (stagedBytes: number, gap = false) =>
      this.hooks.send(chunk.from, { type: 'snapshotAck', from: this.hooks.id, to: chunk.from, term: chunk.term, index: chunk.index, snapshotTerm: chunk.snapshotTerm, stagedBytes, gap });
    const complete = staged === chunk.totalBytes;
    if (chunk.offsetBytes !== staged || (chunk.data.byteLength === 0 && !complete)) {
      ack(staged, chunk.offsetBytes > staged);
      return this.next();
    }
    this.busy = true;
    const verify = () =>
      this.store.verifyStaged((ok) => {
        this.busy = false;
        if (!ok) {
          ack(0); // corrupted on the way: the sender starts over
          return this.next();
        }
        ack(chunk.totalBytes);
        this.holding = true;
        this.queue.length = 0;
        this.complete({ from: chunk.from, term: chunk.term, meta });
      }, (error) => this.hooks.fatal(error));
    if (complete) return verify(); // an empty package: nothing to stage
    this.store.stage(chunk.data, () => {
      const now = staged + chunk.data.byteLength;
      if (now === chunk.totalBytes) return verify();
      this.busy = false;
      ack(now);
      this.next();
    }, (error) => this.hooks.fatal(error));
  }

  private next(): void {
    if (this.holding) return;
    const chunk = this.queue.shift();
    if (chunk !== undefined) this.handle(chunk);
  }
}

/** The checksum a package is announced and verified with. */
function packageChecksum(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A package already encoded in memory, streamed from its bytes (the simulator's port, memory-ports.ts; a process streams its files: snapshot-package.ts). */
export function inMemoryPackage(meta: SnapshotMeta, bytes: Uint8Array): SnapshotPackage {
  return {
    meta,
    totalBytes: bytes.byteLength,
    checksum: packageChecksum(bytes),
    read: (offsetBytes, maxBytes, done) => done(bytes.subarray(offsetBytes, Math.min(bytes.byteLength, offsetBytes + maxBytes))),
    close: () => undefined,
  };
}

/**
 * One incoming package staged in memory (the simulator's port; a process stages to a file): chunks in order,
 * the whole checked against the checksum the sender announced.
 */
export class MemoryStaging {
  private current: { meta: SnapshotMeta; totalBytes: number; checksum: string; chunks: Uint8Array[]; bytes: number } | null = null;

  /** Bytes staged of this package; another package's staging is dropped (0 for a new one). */
  staged(meta: SnapshotMeta, totalBytes: number, checksum: string): number {
    const s = this.current;
    if (s !== null && s.meta.index === meta.index && s.meta.term === meta.term && s.totalBytes === totalBytes && s.checksum === checksum) return s.bytes;
    this.current = { meta, totalBytes, checksum, chunks: [], bytes: 0 };
    return 0;
  }

  append(data: Uint8Array): void {
    const s = this.current;
    assert(s !== null && s.bytes + data.byteLength <= s.totalBytes, 'a chunk is staged into a staging that has room for it');
    s.chunks.push(Uint8Array.from(data));
    s.bytes += data.byteLength;
  }

  /** Whether the complete staging matches its checksum; a mismatch drops it. */
  verify(): boolean {
    const s = this.current;
    assert(s !== null && s.bytes === s.totalBytes, 'only a complete staging is verified');
    const ok = packageChecksum(Buffer.concat(s.chunks)) === s.checksum;
    if (!ok) this.current = null;
    return ok;
  }

  /** The verified package of `meta`, removed from the staging. */
  take(meta: SnapshotMeta): Uint8Array {
    const s = this.current;
    assert(s !== null && s.bytes === s.totalBytes && s.meta.index === meta.index && s.meta.term === meta.term, () => `install of ${meta.index}@${meta.term} without its verified staging`);
    this.current = null;
    return Buffer.concat(s.chunks);
  }

  discard(): void {
    this.current = null;
  }
}
