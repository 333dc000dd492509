// The orderly consumer (RocketMQ's MessageListenerOrderly): one worker per queue this consumer
// owns, processing the queue's messages strictly one batch after another, and only while it
// holds the queue's lock on the broker (replicated: src/broker/queue-locks.ts).
//
// No two consumers process one queue at once. The broker grants a queue's lock to one client
// at a time, for leaseMs from the command's time; this consumer counts its own lease on its
// monotonic clock from BEFORE it sent the lock request, minus lockSafetyMarginMs, so its view
// of the lease ends before the broker's (given leaders' clocks within that margin of real
// time). It starts a listener only while its view is valid, renews every lockRenewIntervalMs
// (a third of the lease, RocketMQ's 20 s of 60 s) — also for a queue a rebalance moved away
// while its message is still in hand — and when the view runs out (or a renewal is refused)
// it aborts the listener's signal: the listener must stop at once (the CLI kills its command).
//
// Rebalance as the pull consumer does it (heartbeats; the leader splits the queues among the
// group's live consumers). A newly assigned queue is locked as soon as the broker grants it
// (asked every lockRetryIntervalMs); its work starts at the group's committed offset, read
// after the grant, so it continues exactly where the previous owner committed. A queue moved
// away: the message in hand is finished, its offset committed, and the lock released at once.
//
// SUSPEND (or a thrown error) retries the same messages after suspendMs with reconsumeTimes +
// 1, never through the retry queue; later messages of the queue wait. Past maxReconsumeTimes
// (default: no limit) the messages are dead-lettered with sendBack, and if the broker refuses
// that they stay unfinished and are delivered again (RocketMQ does the same). Offsets are
// committed after each finished batch, so the committed offset never passes an unfinished one.
import { setTimeout as sleep } from 'node:timers/promises';
import { LIMITS } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { compileFilter, type SubscriptionFilter } from '../filter/index.js';
import type { LedgerClient } from './client.js';
import { type ConsumedMessage, consumed, queryStartOffsets, type StartPosition } from './consumer.js';

export type OrderlyStatus = 'SUCCESS' | 'SUSPEND';

export interface OrderlyMessage extends ConsumedMessage {
  readonly topic: string;
  /** Earlier deliveries of this message to this consumer that suspended (0 the first time). */
  readonly reconsumeTimes: number;
}

export interface OrderlyContext {
  readonly queueId: number;
  readonly reconsumeTimes: number;
  /**
   * Aborted when this consumer may no longer process the queue (its lease ran out or another
   * client holds it): stop at once. A result returned after it was aborted still counts.
   */
  readonly signal: AbortSignal;
}

/** A thrown error counts as SUSPEND. */
export type OrderlyListener = (messages: readonly OrderlyMessage[], context: OrderlyContext) => Promise<OrderlyStatus>;

export interface OrderlyConsumerOptions {
  readonly topic: string;
  readonly group: string;
  /** This consumer's identity in the group and the lock holder's id: unique per process. */
  readonly consumerId: string;
  /** Where a queue without a committed offset for the group starts. */
  readonly from: StartPosition;
  readonly lockLeaseMs?: number;
  /** Default: a third of the lease. */
  readonly lockRenewIntervalMs?: number;
  /** How much sooner than the broker's lease this consumer's ends. Default: a sixth of the lease. */
  readonly lockSafetyMarginMs?: number;
  /** How often a queue assigned to this consumer but locked by another is asked for again. */
  readonly lockRetryIntervalMs?: number;
  readonly suspendMs?: number;
  /** Deliveries that may suspend before the messages are dead-lettered; omitted: no limit. */
  readonly maxReconsumeTimes?: number;
  /** Messages per listener call. */
  readonly batchSize?: number;
  readonly heartbeatIntervalMs?: number;
  /** Longest one pull waits on the broker. */
  readonly pollWaitMs?: number;
  readonly maxMessagesPerPull?: number;
  readonly maxBytesPerPull?: number;
  /** Stop handing out messages once this many were finished (the CLI's --max). */
  readonly maxMessages?: number;
  /** Failures the consumer goes on after (a pull, a lock request, a listener's throw). */
  readonly onError?: (error: unknown, what: string) => void;
  /** Only messages matching it are delivered (the broker skips the others; commits pass them). */
  readonly filter?: SubscriptionFilter;
}

export const DEFAULT_ORDERLY_OPTIONS = Object.freeze({
  lockLeaseMs: 60_000,
  lockRetryIntervalMs: 500,
  suspendMs: 1000,
  batchSize: 1,
  heartbeatIntervalMs: 1000,
  pollWaitMs: 1000,
  maxMessagesPerPull: 32,
  maxBytesPerPull: 4 * 1024 * 1024,
});

type Settings = Required<Omit<OrderlyConsumerOptions, 'maxReconsumeTimes' | 'maxMessages' | 'onError' | 'filter'>> & Pick<OrderlyConsumerOptions, 'maxReconsumeTimes' | 'maxMessages' | 'filter'>;

/** A pull's answer may take its wait plus this long. */
const PULL_MARGIN_MS = 5_000;
/** Pause after a failed pull, offset query or commit before the next try. */
const ERROR_PAUSE_MS = 200;
const MAX_SUSPEND_MS = 3_600_000;

export interface OrderlyStats {
  /** Listener calls in progress. */
  readonly runningListeners: number;
  /** Messages finished: SUCCESS, or dead-lettered. */
  readonly finishedMessages: number;
  /** Queues this consumer holds the lock of now (by its own view). */
  readonly lockedQueues: readonly number[];
}

export class OrderlyConsumer {
  private readonly settings: Settings;
  private readonly onError: (error: unknown, what: string) => void;
  private readonly workers = new Map<number, QueueWorker>();
  /** Queues released (or to release) on the broker, with when their broker lease surely ended. */
  private readonly pendingUnlocks = new Map<number, number>();
  private readonly lockWakeup = new Wakeup();
  private readonly heartbeatWakeup = new Wakeup();
  private loops: Promise<void>[] = [];
  private started = false;
  /** No new work: workers finish what is in hand and stop. */
  private stopping = false;
  /** The lock and heartbeat loops end. */
  private closed = false;
  private runningListeners = 0;
  private finishedMessages = 0;
  /** Messages handed to listeners and not yet finished, counted against maxMessages. */
  private reservedMessages = 0;

  constructor(
    private readonly client: LedgerClient,
    options: OrderlyConsumerOptions,
    private readonly listener: OrderlyListener,
  ) {
    this.settings = validate(options);
    this.onError = options.onError ?? (() => undefined);
  }

  /** Joins the group and starts the workers of the queues it is given. */
  async start(): Promise<void> {
    if (this.started) throw new LmqError('LMQ_BAD_INPUT', 'an orderly consumer starts once');
    this.started = true;
    await this.rebalance();
    this.loops = [this.heartbeatLoop(), this.lockLoop()];
  }

  stats(): OrderlyStats {
    const lockedQueues = [...this.workers.values()].filter((w) => w.lease.valid()).map((w) => w.queueId);
    return { runningListeners: this.runningListeners, finishedMessages: this.finishedMessages, lockedQueues };
  }

  /** Whether maxMessages were finished. */
  finishedAll(): boolean {
    return this.settings.maxMessages !== undefined && this.finishedMessages >= this.settings.maxMessages;
  }

  /**
   * Finishes the messages in hand (their offsets committed), releases every lock and leaves
   * the group, so the queues move to the group's other consumers at once.
   */
  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    for (const worker of this.workers.values()) worker.unassign();
    this.heartbeatWakeup.wake();
    // The lock loop keeps renewing meanwhile: a listener may still be running.
    await Promise.all([...this.workers.values()].map((w) => w.done));
    this.closed = true;
    this.lockWakeup.wake();
    this.heartbeatWakeup.wake();
    await Promise.all(this.loops);
    await this.sendUnlocks();
    await this.client.call({ op: 'leaveGroup', group: this.settings.group, topic: this.settings.topic, consumerId: this.settings.consumerId }).catch((error: unknown) => this.onError(error, 'leaving the group'));
  }

  // --- rebalance ------------------------------------------------------------------------------

  private async heartbeatLoop(): Promise<void> {
    while (!this.closed) {
      await this.heartbeatWakeup.wait(this.settings.heartbeatIntervalMs);
      if (this.stopping) continue;
      await this.rebalance().catch((error: unknown) => this.onError(error, 'heartbeat'));
    }
  }

  private async rebalance(): Promise<void> {
    const { group, topic, consumerId } = this.settings;
    const assignment = await this.client.call({ op: 'heartbeat', group, topic, consumerId });
    if (this.stopping) return;
    const assigned = new Set(assignment.queueIds);
    for (const worker of this.workers.values()) {
      if (assigned.has(worker.queueId)) worker.assigned = true;
      else if (worker.assigned) worker.unassign();
    }
    let added = false;
    for (const queueId of assigned) {
      if (this.workers.has(queueId)) continue;
      const worker = new QueueWorker(queueId);
      this.workers.set(queueId, worker);
      worker.done = this.runWorker(worker);
      added = true;
    }
    if (added) this.lockWakeup.wake(); // lock new queues now, not at the next round
  }

  // --- locks ----------------------------------------------------------------------------------

  private async lockLoop(): Promise<void> {
    while (!this.closed) {
      await this.sendUnlocks();
      await this.lockRound();
      await this.lockWakeup.wait(this.settings.lockRetryIntervalMs);
    }
  }

  /**
   * Asks for the queues assigned but not locked, and renews those due (assigned or still in
   * hand). A queue whose release is still pending (its unlock failed) is not asked for again
   * until that unlock went through or the old lease surely ended: the unlock names only this
   * consumer, so sent after a new grant it would free the new lock while the new worker still
   * believed it held it.
   */
  private async lockRound(): Promise<void> {
    const nowMs = performance.now();
    const due = [...this.workers.values()].filter((w) =>
      w.lease.valid(nowMs) ? w.lease.renewDue(nowMs, this.settings.lockRenewIntervalMs) : w.assigned && !this.stopping && !this.pendingUnlocks.has(w.queueId),
    );
    for (let i = 0; i < due.length; i += LIMITS.maxQueuesPerLock) await this.lockSome(due.slice(i, i + LIMITS.maxQueuesPerLock));
  }

  private async lockSome(workers: readonly QueueWorker[]): Promise<void> {
    const { group, topic, consumerId, lockLeaseMs, lockSafetyMarginMs, lockRenewIntervalMs } = this.settings;
    // Measured before the request leaves: the broker's lease starts later than this.
    const sentAtMs = performance.now();
    let locked: ReadonlySet<number>;
    try {
      const reply = await this.client.call({ op: 'lockQueues', group, clientId: consumerId, queues: workers.map((w) => ({ topic, queueId: w.queueId })), leaseMs: lockLeaseMs }, lockRenewIntervalMs);
      locked = new Set(reply.locked.filter((l) => l.topic === topic).map((l) => l.queueId));
    } catch (error) {
      this.onError(error, 'locking queues'); // the leases already held run out on their own
      return;
    }
    for (const worker of workers) {
      // A released worker's queue may have been granted again: its pending unlock frees it.
      if (this.workers.get(worker.queueId) !== worker) continue;
      if (locked.has(worker.queueId)) worker.granted(sentAtMs, sentAtMs + lockLeaseMs - lockSafetyMarginMs, sentAtMs + lockLeaseMs);
      else worker.lease.revoke(); // another client holds it: whatever this consumer believed is over
    }
  }

  private async sendUnlocks(): Promise<void> {
    const nowMs = performance.now();
    // An unlock that kept failing is moot once the broker's lease surely ended.
    for (const [queueId, endsAtMs] of this.pendingUnlocks) if (endsAtMs <= nowMs) this.pendingUnlocks.delete(queueId);
    const queueIds = [...this.pendingUnlocks.keys()].slice(0, LIMITS.maxQueuesPerLock);
    if (queueIds.length === 0) return;
    const { group, topic, consumerId } = this.settings;
    try {
      await this.client.call({ op: 'unlockQueues', group, clientId: consumerId, queues: queueIds.map((queueId) => ({ topic, queueId })) }, this.settings.lockRenewIntervalMs);
      for (const queueId of queueIds) this.pendingUnlocks.delete(queueId);
    } catch (error) {
      this.onError(error, 'unlocking queues');
    }
  }

  /** The worker ended: its lock goes back to the broker at once (the lock loop sends it). */
  private release(worker: QueueWorker): void {
    assert(this.workers.get(worker.queueId) === worker, 'a worker is released once');
    this.workers.delete(worker.queueId);
    const brokerLeaseEndsMs = worker.lease.dispose();
    if (brokerLeaseEndsMs !== null) {
      this.pendingUnlocks.set(worker.queueId, Math.max(brokerLeaseEndsMs, this.pendingUnlocks.get(worker.queueId) ?? 0));
      this.lockWakeup.wake();
    }
  }

  // --- one queue ------------------------------------------------------------------------------

  private async runWorker(worker: QueueWorker): Promise<void> {
    const position: Position = { tenure: -1, offset: 0, buffer: [], bufferEnd: 0, reconsumeTimes: 0, reserved: 0 };
    while (worker.assigned && !this.stopping) {
      try {
        if (!worker.lease.valid()) await worker.wakeup.wait(this.settings.lockRetryIntervalMs);
        else if (position.tenure !== worker.tenure) await this.resume(worker, position);
        else if (position.buffer.length === 0) await this.fill(worker, position);
        else await this.consumeHead(worker, position);
      } catch (error) {
        this.onError(error, `${this.settings.topic}/${worker.queueId}`);
        await worker.wakeup.wait(ERROR_PAUSE_MS);
      }
    }
    this.unreserve(position);
    this.release(worker);
  }

  /** A new tenure (the lock was granted after it was not held): start at the group's committed offset. */
  private async resume(worker: QueueWorker, position: Position): Promise<void> {
    const tenure = worker.tenure;
    const { group, topic, from } = this.settings;
    const [start] = await queryStartOffsets(this.client, group, topic, [worker.queueId], from);
    assert(start !== undefined && start.queueId === worker.queueId, 'the offset query answers for its queue');
    this.unreserve(position);
    const offset = start.committed ?? start.start;
    Object.assign(position, { tenure, offset, buffer: [], bufferEnd: offset, reconsumeTimes: 0 });
  }

  private async fill(worker: QueueWorker, position: Position): Promise<void> {
    const { topic, pollWaitMs, maxMessagesPerPull, maxBytesPerPull, filter } = this.settings;
    const waitMs = Math.max(0, Math.min(pollWaitMs, worker.lease.remainingMs()));
    const pull = this.client.call({
      op: 'pull', topic, queueId: worker.queueId, offset: position.offset, maxMessages: maxMessagesPerPull, maxBytes: maxBytesPerPull, waitMs,
      ...(filter === undefined ? {} : { filter }),
    }, waitMs + PULL_MARGIN_MS, waitMs + PULL_MARGIN_MS);
    // A rebalance or a lost lease does not wait for the long poll: nothing is in hand.
    const reply = await untilWoken(pull, worker.wakeup.signal);
    if (reply === undefined || position.tenure !== worker.tenure) return;
    position.offset = Math.max(position.offset, reply.startOffset);
    position.buffer = reply.messages.map((m) => consumed(worker.queueId, m));
    position.bufferEnd = Math.max(position.offset, reply.nextBeginOffset);
    assert(position.buffer.every((m, i) => m.offset >= position.offset && m.offset < position.bufferEnd && (i === 0 || m.offset > position.buffer[i - 1]!.offset)), 'a pull answers ascending offsets in the range it read');
    // Everything the pull read was filtered out: commit past it, so the group's lag reaches 0.
    if (position.buffer.length === 0 && position.bufferEnd > position.offset) await this.commitTo(worker, position, position.bufferEnd);
  }

  /** Delivers the head batch; on success (or once dead-lettered) commits past it, else suspends. */
  private async consumeHead(worker: QueueWorker, position: Position): Promise<void> {
    const batch = this.reserve(position);
    if (batch.length === 0) {
      await worker.wakeup.wait(this.settings.lockRetryIntervalMs); // maxMessages reached: nothing more is handed out
      return;
    }
    const outcome = await this.deliver(worker, batch, position.reconsumeTimes);
    const attempts = position.reconsumeTimes + 1;
    const { maxReconsumeTimes, suspendMs } = this.settings;
    // Dead letters only while the lease holds: otherwise the queue's next owner decides.
    const exhausted = maxReconsumeTimes !== undefined && attempts > maxReconsumeTimes && !outcome.lost;
    if (outcome.status === 'SUCCESS' || (exhausted && (await this.deadLetter(batch, attempts)))) {
      await this.commitPast(worker, position, batch);
    } else {
      position.reconsumeTimes = attempts;
      if (!outcome.lost) await worker.wakeup.wait(suspendMs);
    }
    // A lease lost while the listener ran: the next tenure starts from the committed offset.
    if (outcome.lost) position.tenure = -1;
  }

  /** Runs the listener; its signal aborts if the lease ends meanwhile. */
  private async deliver(worker: QueueWorker, batch: readonly ConsumedMessage[], reconsumeTimes: number): Promise<{ status: OrderlyStatus; lost: boolean }> {
    const controller = new AbortController();
    const unwatch = worker.lease.onLost(() => controller.abort(new LmqError('LMQ_TIMEOUT', `lost the lock of ${this.settings.topic}/${worker.queueId}`)));
    // Object.assign, not an object spread: V8 spreads a message ~20× slower, per message here.
    const messages = batch.map((m): OrderlyMessage => Object.assign({}, m, { topic: this.settings.topic, reconsumeTimes }));
    this.runningListeners++;
    try {
      const status = await this.listener(messages, { queueId: worker.queueId, reconsumeTimes, signal: controller.signal });
      return { status: status === 'SUCCESS' ? 'SUCCESS' : 'SUSPEND', lost: controller.signal.aborted };
    } catch (error) {
      this.onError(error, `listener on ${this.settings.topic}/${worker.queueId}@${batch[0]!.offset}`);
      return { status: 'SUSPEND', lost: controller.signal.aborted };
    } finally {
      this.runningListeners--;
      unwatch();
    }
  }

  /** Sends the batch to the group's DLQ; false (kept unfinished) when the broker refuses. */
  private async deadLetter(batch: readonly ConsumedMessage[], attempts: number): Promise<boolean> {
    const { group, topic } = this.settings;
    try {
      // The broker cannot count orderly retries (they stay in place): this consumer names them.
      for (const m of batch) {
        await this.client.call({ op: 'sendBack', group, topic, queueId: m.queueId, offset: m.offset, msgId: m.msgId, orderlyAttempts: attempts, reason: `orderly consumption suspended ${attempts} times` });
      }
      return true;
    } catch (error) {
      this.onError(error, `dead-lettering ${topic}/${batch[0]!.queueId}@${batch[0]!.offset} (kept unfinished: delivered again)`);
      return false;
    }
  }

  /** Commits past a finished batch, retrying while the lease holds (after it, the next owner re-reads the offset). */
  private async commitPast(worker: QueueWorker, position: Position, batch: readonly ConsumedMessage[]): Promise<void> {
    position.buffer = position.buffer.slice(batch.length);
    position.reconsumeTimes = 0;
    this.finishedMessages += batch.length;
    this.reservedMessages -= position.reserved;
    position.reserved = 0;
    // Past the batch and whatever a filter skipped after it: up to the next unfinished message.
    await this.commitTo(worker, position, position.buffer[0]?.offset ?? position.bufferEnd);
  }

  /** Moves the position to `offset` and commits it, retrying while the lease holds (after it, the next owner re-reads the offset). */
  private async commitTo(worker: QueueWorker, position: Position, offset: number): Promise<void> {
    assert(offset > position.offset, 'a commit moves the position forward');
    position.offset = offset;
    const offsets = [{ topic: this.settings.topic, queueId: worker.queueId, offset }];
    for (;;) {
      try {
        await this.client.call({ op: 'commitOffsets', group: this.settings.group, offsets });
        return;
      } catch (error) {
        this.onError(error, `committing ${this.settings.topic}/${worker.queueId}@${offset}`);
        if (!worker.lease.valid()) return;
        await sleep(ERROR_PAUSE_MS);
      }
    }
  }

  /** The head batch, counted against maxMessages (a suspended batch stays counted). */
  private reserve(position: Position): ConsumedMessage[] {
    const { batchSize, maxMessages } = this.settings;
    if (position.reserved === 0) {
      const room = maxMessages === undefined ? batchSize : Math.min(batchSize, maxMessages - this.finishedMessages - this.reservedMessages);
      position.reserved = Math.max(0, Math.min(room, position.buffer.length));
      this.reservedMessages += position.reserved;
    }
    return position.buffer.slice(0, position.reserved);
  }

  private unreserve(position: Position): void {
    this.reservedMessages -= position.reserved;
    position.reserved = 0;
    assert(this.reservedMessages >= 0, 'reservations balance');
  }
}

/** Where one worker is in its queue. */
interface Position {
  /** The worker tenure whose committed offset `offset` continues from; -1: none yet. */
  tenure: number;
  /** The next offset to deliver (the committed offset plus what this tenure finished). */
  offset: number;
  /** Pulled messages from `offset` on, not yet finished (ascending; a filter may leave gaps). */
  buffer: ConsumedMessage[];
  /** Where the last pull ended (its nextBeginOffset): the next pull starts there once the buffer is done. */
  bufferEnd: number;
  /** Suspended deliveries of the head batch. */
  reconsumeTimes: number;
  /** Messages of the head batch counted against maxMessages. */
  reserved: number;
}

class QueueWorker {
  readonly lease = new Lease();
  /** Woken when the lease is granted or lost, or the queue moves away: ends waits and abandons pulls. */
  readonly wakeup = new Wakeup();
  assigned = true;
  /** Counts grants that found the lease not held: each starts again from the committed offset. */
  tenure = 0;
  done: Promise<void> = Promise.resolve();

  constructor(readonly queueId: number) {
    this.lease.onLost(() => this.wakeup.wake());
  }

  unassign(): void {
    this.assigned = false;
    this.wakeup.wake();
  }

  granted(sentAtMs: number, validUntilMs: number, brokerLeaseEndsMs: number): void {
    if (!this.lease.grant(sentAtMs, validUntilMs, brokerLeaseEndsMs)) return;
    this.tenure++;
    this.wakeup.wake();
  }
}

/**
 * This consumer's view of its lease on one queue, on the monotonic clock: valid until
 * validUntilMs, which is always before the broker's end of it.
 */
class Lease {
  private validUntilMs = 0;
  private lastSentAtMs = Number.NEGATIVE_INFINITY;
  /** When the broker's lease surely ended (null: never granted). */
  private brokerLeaseEndsMs: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private readonly lostListeners = new Set<() => void>();

  valid(nowMs = performance.now()): boolean {
    return nowMs < this.validUntilMs;
  }

  remainingMs(): number {
    return Math.max(0, this.validUntilMs - performance.now());
  }

  renewDue(nowMs: number, renewIntervalMs: number): boolean {
    return nowMs - this.lastSentAtMs >= renewIntervalMs;
  }

  /** A grant for a request sent at sentAtMs. Returns whether the lease was not held before. */
  grant(sentAtMs: number, validUntilMs: number, brokerLeaseEndsMs: number): boolean {
    assert(validUntilMs > sentAtMs && brokerLeaseEndsMs > validUntilMs, 'a lease view ends after its request and before the broker lease');
    const nowMs = performance.now();
    const fresh = !this.valid(nowMs);
    this.lastSentAtMs = sentAtMs;
    this.brokerLeaseEndsMs = Math.max(brokerLeaseEndsMs, this.brokerLeaseEndsMs ?? 0);
    if (validUntilMs <= nowMs) return false; // answered too late to be of use
    this.validUntilMs = Math.max(this.validUntilMs, validUntilMs);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.expire(), this.validUntilMs - nowMs);
    this.timer.unref();
    return fresh;
  }

  /** Another client holds the queue: the lease is over now. */
  revoke(): void {
    if (this.validUntilMs === 0) return;
    this.validUntilMs = 0;
    this.expire();
  }

  /** Calls `listener` when the lease ends; returns the unsubscribe. */
  onLost(listener: () => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** Ends the lease view; returns when the broker's lease surely ended (null: never granted). */
  dispose(): number | null {
    clearTimeout(this.timer);
    this.validUntilMs = 0;
    this.lostListeners.clear();
    return this.brokerLeaseEndsMs;
  }

  private expire(): void {
    clearTimeout(this.timer);
    if (this.valid()) {
      // A renewal moved the end while this timer was due: wait for the new end.
      this.timer = setTimeout(() => this.expire(), this.remainingMs());
      this.timer.unref();
      return;
    }
    for (const listener of [...this.lostListeners]) listener();
  }
}

/** A wait that ends early at wake(). */
class Wakeup {
  private controller = new AbortController();

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async wait(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.controller.signal }).catch(() => undefined);
  }

  wake(): void {
    this.controller.abort();
    this.controller = new AbortController();
  }
}

/** `work`'s outcome, or undefined when `signal` aborts first (work's later outcome is dropped). */
function untilWoken<T>(work: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const woken = () => resolve(undefined);
    signal.addEventListener('abort', woken, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', woken);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', woken);
        reject(error);
      },
    );
  });
}

function validate(options: OrderlyConsumerOptions): Settings {
  const lockLeaseMs = options.lockLeaseMs ?? DEFAULT_ORDERLY_OPTIONS.lockLeaseMs;
  const settings: Settings = {
    ...DEFAULT_ORDERLY_OPTIONS,
    lockRenewIntervalMs: Math.floor(lockLeaseMs / 3),
    lockSafetyMarginMs: Math.floor(lockLeaseMs / 6),
    ...Object.fromEntries(Object.entries(options).filter(([name, value]) => value !== undefined && name !== 'onError')),
  } as Settings;
  const check = (name: keyof Settings, min: number, max: number) => {
    const value = settings[name];
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new LmqError('LMQ_BAD_INPUT', `orderly consumer ${name} must be a whole number from ${min} to ${max}, not ${String(value)}`);
    }
  };
  check('lockLeaseMs', LIMITS.minLockLeaseMs, LIMITS.maxLockLeaseMs);
  check('lockRenewIntervalMs', 1, settings.lockLeaseMs);
  check('lockSafetyMarginMs', 1, settings.lockLeaseMs);
  check('lockRetryIntervalMs', 1, settings.lockLeaseMs);
  check('suspendMs', 0, MAX_SUSPEND_MS);
  check('maxReconsumeTimes', 0, LIMITS.maxReconsumeTimes);
  check('batchSize', 1, LIMITS.maxPullMessages);
  check('heartbeatIntervalMs', 1, 60_000);
  check('pollWaitMs', 0, 60_000);
  check('maxMessagesPerPull', 1, LIMITS.maxPullMessages);
  check('maxBytesPerPull', 1, LIMITS.maxPullBytes);
  check('maxMessages', 1, Number.MAX_SAFE_INTEGER);
  if (settings.filter !== undefined) compileFilter(settings.filter);
  // The view must outlast a renewal interval: a lease renewed on time never lapses.
  if (settings.lockRenewIntervalMs + settings.lockSafetyMarginMs >= settings.lockLeaseMs) {
    throw new LmqError('LMQ_BAD_INPUT', `orderly consumer lockRenewIntervalMs ${settings.lockRenewIntervalMs} plus lockSafetyMarginMs ${settings.lockSafetyMarginMs} must be below lockLeaseMs ${settings.lockLeaseMs}`);
  }
  return Object.freeze(settings);
}
