// Orderly consumers' queue locks (RocketMQ's lockBatchMQ / unlockBatchMQ), replicated: a lock
// is state of the broker's state machine, granted and released by commands in the Raft log,
// so every node holds the same locks and a new leader knows every lock an old one granted.
//
// Time: a lock command carries the leader's clock at proposal (timestampMs), and apply judges
// it at lockTimeMs = max(timestampMs, the largest lock time applied so far), kept in meta
// LOCK_CLOCK_META. A queue is granted (or renewed) to clientId when no lock record is there,
// the record is clientId's, or it expired (expiresAtMs <= lockTimeMs); the grant lasts until
// lockTimeMs + leaseMs. Because the lock time never goes backwards along the log, a leader
// whose clock is behind cannot end an earlier grant early. (A leader whose clock is ahead
// moves the lock time forward for the leaders after it: locks then last longer in real time,
// never shorter, until the clocks catch up — a delay for a dead client's queues, not a
// second holder.) The client side (src/client/orderly-consumer.ts) counts its own lease on its
// monotonic clock from before it sent the request, minus a margin, so its view of a lease
// ends before the broker's as long as the leaders' clocks agree with real time within that
// margin.
//
// Records: ['lock', group, topic, queueId] → [clientId, expiresAtMs]. They are bounded by
// the group's queues: a lock command also drops the expired records of the group on each
// topic it names (at most that topic's queue count), and unlock removes the record. Lock
// records and the lock clock are in snapshots (snapshot.ts): the retained log cannot give
// them back.
import { assert } from '../util/assert.js';
import { LIMITS } from '../protocol/index.js';
import type { BrokerCommand, LockedQueue } from './commands.js';
import { type Key, MAX_KEY_PART, type BrokerStore } from './store.js';

export const LOCK_KIND = 'lock';
/** Meta record: the largest lock time applied so far (epoch ms, leaders' clocks). */
export const LOCK_CLOCK_META = 'lockClockMs';

export type LockCommand = Extract<BrokerCommand, { kind: 'lockQueues' | 'unlockQueues' }>;

export interface GrantedLock {
  topic: string;
  queueId: number;
  /** The broker's end of the lease (lock time, epoch ms): informative; clients count their own. */
  expiresAtMs: number;
}

type QueueProblem = { error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT'; message: string };

export type LockApplyResult =
  /** The queues now held by clientId, in command order: a subset of those it named. */
  | { kind: 'lockQueues'; locked: GrantedLock[] }
  /** released: how many of the named queues clientId held (and no longer does). */
  | { kind: 'unlockQueues'; ok: true; released: number }
  | { kind: 'lockQueues' | 'unlockQueues'; error: QueueProblem['error']; message: string };

interface LockRecord {
  clientId: string;
  expiresAtMs: number;
}

/**
 * Applies a lock or unlock command. A command naming a missing topic or queue changes nothing
 * (like commitOffsets); `queueProblem` is the state machine's check.
 */
export function applyLockCommand(store: BrokerStore, command: LockCommand, queueProblem: (topic: string, queueId: number) => QueueProblem | undefined): LockApplyResult {
  assert(command.queues.length >= 1 && command.queues.length <= LIMITS.maxQueuesPerLock, 'a lock command names 1 to maxQueuesPerLock queues');
  for (const queue of command.queues) {
    const problem = queueProblem(queue.topic, queue.queueId);
    if (problem !== undefined) return { kind: command.kind, ...problem };
  }
  return command.kind === 'lockQueues' ? lock(store, command) : unlock(store, command);
}

function lock(store: BrokerStore, command: Extract<LockCommand, { kind: 'lockQueues' }>): LockApplyResult {
  const previousMs = store.getMeta(LOCK_CLOCK_META) ?? 0;
  const lockTimeMs = Math.max(command.timestampMs, previousMs);
  if (lockTimeMs !== previousMs) store.putMeta(LOCK_CLOCK_META, lockTimeMs);
  for (const topic of new Set(command.queues.map((q) => q.topic))) dropExpired(store, command.group, topic, lockTimeMs);
  const expiresAtMs = lockTimeMs + command.leaseMs;
  const locked: GrantedLock[] = [];
  for (const { topic, queueId } of command.queues) {
    const held = getLock(store, command.group, topic, queueId);
    // Expired records of these topics were dropped above: a record left is a live lock.
    assert(held === undefined || held.expiresAtMs > lockTimeMs, 'an expired lock outlived its drop');
    if (held !== undefined && held.clientId !== command.clientId) continue;
    // A renewal never shortens a lease: the lock time does not go backwards and leaseMs is the client's.
    const record = { clientId: command.clientId, expiresAtMs: Math.max(expiresAtMs, held?.expiresAtMs ?? 0) };
    store.put(lockKey(command.group, topic, queueId), [record.clientId, record.expiresAtMs]);
    locked.push({ topic, queueId, expiresAtMs: record.expiresAtMs });
  }
  assert(locked.length <= command.queues.length, 'granted at most the queues asked for');
  return { kind: 'lockQueues', locked };
}

function unlock(store: BrokerStore, command: Extract<LockCommand, { kind: 'unlockQueues' }>): LockApplyResult {
  let released = 0;
  for (const { topic, queueId } of command.queues) {
    // Another client's lock stays: a stale unlock (a rebalance long past) cannot free it.
    if (getLock(store, command.group, topic, queueId)?.clientId !== command.clientId) continue;
    store.remove(lockKey(command.group, topic, queueId));
    released++;
  }
  return { kind: 'unlockQueues', ok: true, released };
}

/** Removes the group's expired locks on one topic: at most its queue count of records. */
function dropExpired(store: BrokerStore, group: string, topic: string, lockTimeMs: number): void {
  const records = store.range([LOCK_KIND, group, topic], [LOCK_KIND, group, topic, MAX_KEY_PART], LIMITS.maxQueuesPerTopic);
  for (const { key, value } of records) {
    if (decodeLock(value).expiresAtMs <= lockTimeMs) store.remove(key);
  }
}

function getLock(store: BrokerStore, group: string, topic: string, queueId: number): LockRecord | undefined {
  const value = store.get(lockKey(group, topic, queueId));
  return value === undefined ? undefined : decodeLock(value);
}

function lockKey(group: string, topic: string, queueId: number): Key {
  return [LOCK_KIND, group, topic, queueId];
}

function decodeLock(value: unknown): LockRecord {
  assert(lockValueProblem(value) === undefined, 'a lock record is [clientId, expiresAtMs]');
  const [clientId, expiresAtMs] = value as [string, number];
  return { clientId, expiresAtMs };
}

function lockValueProblem(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length !== 2) return 'is not [clientId, expiresAtMs]';
  const [clientId, expiresAtMs] = value as unknown[];
  if (typeof clientId !== 'string' || clientId.length < 1) return 'has no clientId';
  return typeof expiresAtMs === 'number' && Number.isSafeInteger(expiresAtMs) && expiresAtMs >= 0 ? undefined : 'has no expiry time';
}

/** What is wrong with a lock record read from a snapshot (input from disk or the network), if anything. */
export function lockRecordProblem(key: Key, value: unknown): string | undefined {
  const [, group, topic, queueId] = key;
  const keyOk = key.length === 4 && typeof group === 'string' && typeof topic === 'string' && typeof queueId === 'number' && Number.isSafeInteger(queueId) && queueId >= 0;
  return keyOk ? lockValueProblem(value) : 'has a bad key';
}

/** The queue a lock record's key names (the snapshot checks that it exists). */
export function lockedQueueOf(key: Key): LockedQueue {
  assert(key[0] === LOCK_KIND && typeof key[2] === 'string' && typeof key[3] === 'number', 'a lock key');
  return { topic: key[2], queueId: key[3] };
}
