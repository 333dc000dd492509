// A snapshot package streamed between two ProcessSnapshots on real files (log stores, snapshot
// stores, the transfer's sender and receiver), the Raft core left out: the follower ends with
// the leader's window and snapshot; a chunk damaged on the way is refused by the digest and the
// transfer starts over; retention keeps the segments a package being sent reads; the staged file
// is gone after the install.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogStore } from '../src/log/log-store.js';
import { SnapshotStore } from '../src/log/snapshot-store.js';
import { ProcessSnapshots, type SnapshotStateMachine, type StateSnapshot } from '../src/node/process-snapshots.js';
import { PACKAGE_READ_BYTES } from '../src/node/snapshot-package.js';
import { SnapshotReceiver, SnapshotSender, type StagedSnapshot, type TransferMessage } from '../src/node/snapshot-transfer.js';
import type { Entry } from '../src/raft/types.js';
import { capturingLogger, options, plain, readAll, removeTempDirs, tempDir } from './log-helpers.js';
import { payloadOf } from './snapshot-helpers.js';

afterEach(removeTempDirs);

const SEGMENT_BYTES = 256 * 1024;
const ENTRY_BYTES = 2000;
const CHUNK_BYTES = 64 * 1024;

/** A state machine whose state is a payload; it records what a restore saw. */
class PayloadMachine implements SnapshotStateMachine {
  restored: { index: number; payload: Buffer; entries: number } | null = null;
  constructor(
    private applied: number,
    private readonly retainedFrom: number,
    private readonly payload: Buffer,
  ) {}
  appliedIndex(): number {
    return this.applied;
  }
  retainedFromIndex(): number {
    return this.retainedFrom;
  }
  async snapshotProblem(): Promise<string | null> {
    return null;
  }
  beginSnapshot(): StateSnapshot {
    const payload = this.payload;
    return {
      index: this.applied,
      retainedFromIndex: this.retainedFrom,
      chunks: async function* () {
        for (let at = 0; at < payload.length; at += 100_000) yield payload.subarray(at, at + 100_000);
      },
      abort: () => undefined,
    };
  }
  async restoreSnapshot(index: number, payload: Uint8Array, log: { entries(lo: number, hi: number, maxBytes: number): Entry[] }): Promise<void> {
    let count = 0;
    for (let lo = this.retainedFrom; lo <= index; ) {
      const read = log.entries(lo, index + 1, 1 << 20);
      count += read.length;
      lo += read.length;
    }
    this.applied = index;
    this.restored = { index, payload: Buffer.from(payload), entries: count };
  }
}

function termOf(index: number): number {
  return 1 + Math.floor(index / 500);
}

async function node(entryCount: number, retainedFrom: number, payload: Buffer) {
  const dir = tempDir();
  const { logger, lines } = capturingLogger();
  const log = LogStore.open(options(join(dir, 'log'), { segmentBytes: SEGMENT_BYTES }));
  for (let index = 1; index <= entryCount; index += 50) {
    const batch: Entry[] = [];
    for (let i = index; i <= Math.min(entryCount, index + 49); i++) batch.push({ index: i, term: termOf(i), type: 1, data: payloadOf(i, ENTRY_BYTES) });
    log.append(batch);
  }
  await log.flush();
  log.setCommitIndex(entryCount);
  const store = await SnapshotStore.open({ dir: join(dir, 'snapshots') });
  const machine = new PayloadMachine(entryCount, retainedFrom, payload);
  const snapshots = await ProcessSnapshots.open({ store, log, stateMachine: machine, logger });
  return { dir, log, store, machine, snapshots, lines };
}

async function closeNodes(...nodes: Array<{ log: LogStore; store: SnapshotStore }>): Promise<void> {
  for (const n of nodes) {
    await n.log.close();
    await n.store.close();
  }
}

/**
 * Runs one transfer: messages delivered on later turns of the event loop, the sender ticked every
 * few ms; `damage` may change a chunk on its way, or drop it. Resolves once the follower installed it.
 */
function transfer(leader: ProcessSnapshots, follower: ProcessSnapshots, index: number, term: number, damage: (chunk: { offsetBytes: number; data: Uint8Array }) => 'drop' | void): Promise<{ stagingWentBack: boolean }> {
  return new Promise((resolve, reject) => {
    let receiver: SnapshotReceiver;
    let stagedMaxBytes = 0;
    let stagingWentBack = false;
    const deliver = (message: TransferMessage) =>
      setImmediate(() => {
        if (message.type === 'snapshotChunk') {
          const data = Uint8Array.from(message.data);
          if (damage({ offsetBytes: message.offsetBytes, data }) !== 'drop') receiver.receive({ ...message, data });
        } else {
          stagingWentBack ||= message.stagedBytes < stagedMaxBytes;
          stagedMaxBytes = Math.max(stagedMaxBytes, message.stagedBytes);
          sender.acknowledged(message);
        }
      });
    const hooks = (id: string) => ({ id, send: (_to: string, m: TransferMessage) => deliver(m), failed: () => reject(new Error('transfer abandoned')), fatal: reject });
    const sender = new SnapshotSender(leader, { maxChunkBytes: CHUNK_BYTES, maxInflightBytes: 4 * CHUNK_BYTES, maxPackageBytes: 2 ** 40, resendAfterTicks: 3, abandonAfterTicks: 3000 }, hooks('a'));
    const timer = setInterval(() => sender.tick(), 5);
    receiver = new SnapshotReceiver(follower, hooks('b'), () => 1, (staged: StagedSnapshot) => {
      follower.install(staged.meta, () => {
        clearInterval(timer);
        sender.closeAll();
        resolve({ stagingWentBack });
      }, reject);
    });
    sender.start('b', 1, { index, term });
  });
}

describe('snapshot packages – streamed from the files, staged to a file, checked by digest', () => {
  it('installs the leader snapshot and retained log on an empty follower; a damaged chunk is refused and sent again', async () => {
    const entryCount = 3000;
    const payload = payloadOf(7, 300_000);
    const leader = await node(entryCount, 1001, payload);
    await leader.snapshots.take((i) => leader.log.term(i));
    leader.log.deleteBefore(1001);
    expect(leader.log.firstIndex()).toBeGreaterThan(1);
    expect(leader.log.firstIndex()).toBeLessThanOrEqual(1001);
    // The state learns where its log starts from the payload; this one is told.
    const follower = await node(0, 1001, Buffer.alloc(0));

    let damaged = 0;
    const mid = 2 * PACKAGE_READ_BYTES;
    const { stagingWentBack } = await transfer(leader.snapshots, follower.snapshots, entryCount, termOf(entryCount), (chunk) => {
      if (damaged === 0 && chunk.offsetBytes <= mid && mid < chunk.offsetBytes + chunk.data.byteLength) {
        chunk.data[mid - chunk.offsetBytes]! ^= 0x40;
        damaged += 1;
      }
    });
    expect(damaged).toBe(1);
    // The digest refused the staging, which started over from byte 0.
    expect(stagingWentBack).toBe(true);
    expect(follower.lines.some((l) => String(l.msg).includes('is refused') && String(l.problem).includes('SHA-256 differs'))).toBe(true);
    const sent = leader.lines.find((l) => l.msg === 'sending a snapshot package to a follower');
    // The package (~4 MB of log) is several times what the leader reads at once.
    expect(sent?.totalBytes as number).toBeGreaterThan(3 * PACKAGE_READ_BYTES);

    expect(follower.log.firstIndex()).toBe(1001);
    expect(follower.log.lastIndex()).toBe(entryCount);
    expect(plain(readAll(follower.log))).toEqual(plain(leader.log.entries(1001, entryCount + 1, Number.MAX_SAFE_INTEGER)));
    expect(follower.machine.restored).toMatchObject({ index: entryCount, entries: entryCount - 1000 });
    expect(follower.machine.restored!.payload.equals(payload)).toBe(true);
    expect(follower.snapshots.latest()).toEqual({ index: entryCount, term: termOf(entryCount) });
    expect(readdirSync(join(follower.dir, 'snapshots')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await closeNodes(leader, follower);
  }, 60_000);

  it('resumes where the follower stands after chunks are lost (no restart from byte 0)', async () => {
    const leader = await node(1500, 501, payloadOf(5, 50_000));
    await leader.snapshots.take((i) => leader.log.term(i));
    const follower = await node(0, 501, Buffer.alloc(0));
    const lost = new Set<number>();
    let chunks = 0;
    const { stagingWentBack } = await transfer(leader.snapshots, follower.snapshots, 1500, termOf(1500), (chunk) => {
      chunks += 1;
      // Every 7th chunk vanishes (once per offset): the next one is a gap, answered with where staging stands.
      if (chunks % 7 !== 0 || lost.has(chunk.offsetBytes)) return;
      lost.add(chunk.offsetBytes);
      return 'drop';
    });
    expect(lost.size).toBeGreaterThan(3);
    // Each loss cost a resend from where the follower stood: its staging never went back.
    expect(stagingWentBack).toBe(false);
    expect(follower.lines.some((l) => String(l.msg).includes('is refused'))).toBe(false);
    expect(plain(readAll(follower.log))).toEqual(plain(leader.log.entries(501, 1501, Number.MAX_SAFE_INTEGER)));
    await closeNodes(leader, follower);
  }, 60_000);

  it('pins the segments a package being sent reads until it is closed', async () => {
    const leader = await node(2000, 1, payloadOf(3, 1000));
    await leader.snapshots.take((i) => leader.log.term(i));
    expect(leader.snapshots.logPinnedFrom()).toBe(Number.POSITIVE_INFINITY);
    const pkg = await new Promise<{ close(): void } | null>((resolve, reject) => leader.snapshots.openPackage({ index: 2000, term: termOf(2000) }, resolve, reject));
    expect(pkg).not.toBeNull();
    expect(leader.snapshots.logPinnedFrom()).toBe(1);
    pkg!.close();
    expect(leader.snapshots.logPinnedFrom()).toBe(Number.POSITIVE_INFINITY);
    await closeNodes(leader);
  });
});

describe('snapshot packages – a package is checked whole before the node is told it is good', () => {
  it('refuses one whose digest matches but whose header and log are not a package (a broken or hostile leader), without failing', async () => {
    const follower = await node(0, 1, Buffer.alloc(0));
    const forged = Buffer.alloc(4096, 7);
    const checksum = createHash('sha256').update(forged).digest('hex');
    const meta = { index: 50, term: 2 };
    expect(follower.snapshots.staged(meta, forged.length, checksum)).toBe(0);
    await new Promise<void>((resolve, reject) => follower.snapshots.stage(forged, resolve, reject));
    const ok = await new Promise<boolean>((resolve, reject) => follower.snapshots.verifyStaged(resolve, reject));
    expect(ok).toBe(false);
    expect(follower.lines.some((l) => String(l.msg).includes('is refused') && !String(l.problem).includes('SHA-256'))).toBe(true);
    // Nothing was installed or kept: no snapshot file, no staging left behind.
    expect(follower.snapshots.latest()).toBeNull();
    expect(readdirSync(join(follower.dir, 'snapshots')).filter((f) => f.startsWith('incoming-'))).toEqual([]);
    await closeNodes(follower);
  });
});
