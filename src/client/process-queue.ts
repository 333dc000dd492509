// One queue's local state in the push consumer (RocketMQ's ProcessQueue): the messages pulled
// and not yet finished, which of them wait to be handed to a listener, where the next pull
// starts, and the offset the group may commit — the lowest offset not yet finished, so a
// crash redelivers every unfinished message and never skips one.
//
// Pulls append messages in offset order (with gaps where a filter skipped some); a message leaves only when it is finished (the
// listener returned SUCCESS, or its sendBack was acknowledged). No I/O here: the push
// consumer (push-consumer.ts) drives it.
import type { MessageOrigin, StoredMessage } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import type { SubscriptionFilter } from '../filter/index.js';

/** A message as the push consumer hands it to its listener. */
export interface PushMessage {
  /** The topic it was read from: the subscribed topic, or the group's `%RETRY%<group>`. */
  readonly topic: string;
  readonly queueId: number;
  readonly offset: number;
  /** The producer's msgId; a retry copy keeps the original's. */
  readonly msgId: string;
  /** 0 on the first delivery, n on the n-th redelivery. */
  readonly reconsumeTimes: number;
  /** A retry copy: where the first delivery was (topic, queue, offset). */
  readonly origin: MessageOrigin | undefined;
  readonly tag: string | undefined;
  readonly keys: readonly string[];
  readonly properties: Readonly<Record<string, string>> | undefined;
  readonly body: Uint8Array;
  readonly storeTimestampMs: number;
}

export function pushMessage(m: StoredMessage): PushMessage {
  return {
    topic: m.topic, queueId: m.queueId, offset: m.offset, msgId: m.msgId, reconsumeTimes: m.reconsumeTimes ?? 0, origin: m.origin,
    tag: m.tag, keys: m.keys ?? [], properties: m.properties, body: m.body, storeTimestampMs: m.storeTimestampMs,
  };
}

export class ProcessQueue {
  /** Pulled and not finished, keyed by offset; insertion order is offset order (pulls only append). */
  private readonly held = new Map<number, PushMessage>();
  /** Held messages waiting for a listener, in hand-out order; `readyHead` is the next one. */
  private ready: PushMessage[] = [];
  private readyHead = 0;
  private heldBytesTotal = 0;
  /** Next offset to pull; at or above every held offset. */
  private pullOffset: number;
  /** The offset last committed (or found committed) for the group. */
  committedOffset: number;
  /** Set when the queue moved away or the consumer stops: no more pulls or hand-outs. */
  private closedFlag = false;
  /** Aborted on close: sendBack retries and pull backoffs of this queue end. */
  readonly abort = new AbortController();
  /** Batches handed out and not yet done (listener and sendBacks). */
  readonly inFlight = new Set<Promise<void>>();
  private readonly redeliveryTimers = new Set<NodeJS.Timeout>();
  private roomWaiters: (() => void)[] = [];

  constructor(
    readonly topic: string,
    readonly queueId: number,
    startOffset: number,
    /** Sent with every pull of this queue (the subscribed topic's filter; none for the retry topic). */
    readonly filter?: SubscriptionFilter,
  ) {
    assert(Number.isSafeInteger(startOffset) && startOffset >= 0, 'a queue starts at a whole offset');
    this.pullOffset = startOffset;
    this.committedOffset = startOffset;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  get nextOffset(): number {
    return this.pullOffset;
  }

  get heldMessages(): number {
    return this.held.size;
  }

  get heldBytes(): number {
    return this.heldBytesTotal;
  }

  get readyMessages(): number {
    return this.ready.length - this.readyHead;
  }

  /**
   * Adds one pull's answer: `startOffset` is where the broker read from (retention may move it
   * past the asked offset), `nextBeginOffset` where the next pull starts — past the messages,
   * and past those a filter skipped between them and after them.
   */
  add(startOffset: number, messages: readonly StoredMessage[], nextBeginOffset: number): PushMessage[] {
    assert(startOffset >= this.pullOffset, () => `pull of ${this.topic}/${this.queueId} started at ${startOffset}, below ${this.pullOffset}`);
    assert(nextBeginOffset >= startOffset + messages.length, () => `pull of ${this.topic}/${this.queueId} ends at ${nextBeginOffset}, inside its ${messages.length} messages from ${startOffset}`);
    this.pullOffset = startOffset;
    const added: PushMessage[] = [];
    for (const stored of messages) {
      assert(stored.offset >= this.pullOffset && stored.offset < nextBeginOffset, () => `pull of ${this.topic}/${this.queueId} answered offset ${stored.offset}, outside ${this.pullOffset}..${nextBeginOffset}`);
      this.pullOffset = stored.offset;
      const message = pushMessage(stored);
      this.held.set(message.offset, message);
      this.heldBytesTotal += message.body.byteLength;
      this.ready.push(message);
      added.push(message);
      this.pullOffset++;
    }
    this.pullOffset = nextBeginOffset;
    return added;
  }

  /** Up to `max` ready messages, for one listener call. */
  take(max: number): PushMessage[] {
    assert(max >= 1, 'take at least one');
    assert(!this.closedFlag, 'a closed queue hands out nothing');
    const batch = this.ready.slice(this.readyHead, this.readyHead + max);
    this.readyHead += batch.length;
    // Drop the handed-out prefix once it is most of the array: under a steady inflow the list
    // may never empty, and the prefix would keep every message it ever held alive.
    if (this.readyHead * 2 >= this.ready.length) {
      this.ready = this.ready.slice(this.readyHead);
      this.readyHead = 0;
    }
    return batch;
  }

  /** The listener succeeded on it, or its sendBack was acknowledged. */
  finish(message: PushMessage): void {
    const held = this.held.get(message.offset);
    assert(held !== undefined, () => `finished ${this.topic}/${this.queueId}@${message.offset}, which is not held`);
    this.held.delete(message.offset);
    this.heldBytesTotal -= held.body.byteLength;
    assert(this.heldBytesTotal >= 0, 'held bytes stay counted');
    this.wakeRoomWaiters();
  }

  /** Hands a held message to a listener again after `delayMs`, as its reconsumeTimes + 1 (RocketMQ's local reconsume when sendBack fails). */
  redeliverLater(message: PushMessage, delayMs: number, ready: () => void): void {
    assert(this.held.has(message.offset), 'only a held message is redelivered');
    if (this.closedFlag) return;
    const timer = setTimeout(() => {
      this.redeliveryTimers.delete(timer);
      if (this.closedFlag) return;
      this.ready.push({ ...message, reconsumeTimes: message.reconsumeTimes + 1 });
      ready();
    }, delayMs);
    this.redeliveryTimers.add(timer);
  }

  /** The offset the group may commit: the lowest held (unfinished) offset, else the next to pull. */
  commitPoint(): number {
    for (const offset of this.held.keys()) return offset;
    return this.pullOffset;
  }

  /** Whether the cache holds its bound of messages or bytes (pulling waits). */
  isFull(maxMessages: number, maxBytes: number): boolean {
    return this.held.size >= maxMessages || this.heldBytesTotal >= maxBytes;
  }

  /** Resolves when a held message finishes or the queue closes. */
  untilRoom(): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /**
   * Stops pulls and hand-outs: the messages not yet handed out stay held (unfinished), so the
   * commit point stays at or below them; those in hand may still finish.
   */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.ready = [];
    this.readyHead = 0;
    for (const timer of this.redeliveryTimers) clearTimeout(timer);
    this.redeliveryTimers.clear();
    this.abort.abort();
    this.wakeRoomWaiters();
  }

  private wakeRoomWaiters(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }
}
