// The producer's accumulator: sends not yet in a request, in call order. The producer takes
// runs off its head — consecutive sends of one topic within a request's bounds — and turns
// each run into one produce request, so sends that wait while earlier requests are out are
// combined by themselves (Kafka's linger.ms=0, RocketMQ 5's autoBatch). At most
// maxQueuedMessages messages are queued; sends beyond wait for room in call order, so order
// is never changed by the bound; and at most maxWaitingSends sends wait, beyond which a send
// is refused at once with LMQ_OVERLOADED (a caller that never awaits its sends). The producer's batching options and
// their bounds live here too.
import { LIMITS } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import type { OutgoingMessage, QueueSelector, SendResult } from './producer.js';

export interface ProducerOptions {
  /** Produce requests of this producer's session outstanding at once; sends arriving meanwhile wait and are combined. */
  readonly maxInflightRequests: number;
  /** Sends combined into one request at most (≤ LIMITS.maxMessagesPerProduce). 1: one request per send. */
  readonly maxBatchMessages: number;
  /** Message bytes (bodies, keys, tags, properties) combined into one request at most (≤ LIMITS.maxProduceBodyBytes). */
  readonly maxBatchBytes: number;
  /** Messages queued for a request at most; sends beyond wait for room, in call order. */
  readonly maxQueuedMessages: number;
  /** Sends waiting for room at most; one more is refused with LMQ_OVERLOADED (a caller not awaiting its sends). */
  readonly maxWaitingSends: number;
}

export const DEFAULT_PRODUCER_OPTIONS: ProducerOptions = Object.freeze({
  maxInflightRequests: 4,
  maxBatchMessages: 256,
  maxBatchBytes: 1024 * 1024,
  maxQueuedMessages: 10_000,
  maxWaitingSends: 100_000,
});

const OPTION_BOUNDS: Readonly<Record<keyof ProducerOptions, number>> = Object.freeze({
  maxInflightRequests: 4096,
  maxBatchMessages: LIMITS.maxMessagesPerProduce,
  maxBatchBytes: LIMITS.maxProduceBodyBytes,
  maxQueuedMessages: 1_000_000,
  maxWaitingSends: 10_000_000,
});

export function producerOptions(overrides: Partial<ProducerOptions>): ProducerOptions {
  const options = { ...DEFAULT_PRODUCER_OPTIONS, ...overrides };
  for (const name of Object.keys(options)) {
    if (!(name in OPTION_BOUNDS)) throw new LmqError('LMQ_BAD_INPUT', `unknown producer option "${name}"`);
    const value = options[name as keyof ProducerOptions];
    const max = OPTION_BOUNDS[name as keyof ProducerOptions];
    if (!Number.isSafeInteger(value) || value < 1 || value > max) throw new LmqError('LMQ_BAD_INPUT', `producer option ${name} must be a whole number from 1 to ${max}, not ${value}`);
  }
  return Object.freeze(options);
}

export interface PendingSend {
  readonly topic: string;
  /** One message for send(); an explicit batch's messages for sendBatch(). */
  readonly messages: readonly OutgoingMessage[];
  readonly selector: QueueSelector;
  /** sendBatch: a request of its own, one queue, stored all or none. */
  readonly explicitBatch: boolean;
  /** Bodies plus an upper bound on the UTF-8 bytes of keys, tags and properties. */
  readonly sizeBytes: number;
  /** performance.now() (monotonic) after which the send fails rather than starting a request. */
  readonly deadlineMs: number;
  /** The send's place in call order (putBack restores it). */
  readonly callOrder: number;
  readonly resolve: (results: SendResult[]) => void;
  readonly reject: (error: unknown) => void;
}

export interface RunBounds {
  readonly maxMessages: number;
  readonly maxBytes: number;
}

export class SendQueue {
  /** Admitted: they count against maxQueuedMessages and are taken in this order. */
  private readonly queued: PendingSend[] = [];
  /** Beyond the bound: admitted in this order as room frees. */
  private readonly waitingForRoom: PendingSend[] = [];
  private queuedMessageCount = 0;
  /**
   * Sends put back (a refused request's) and still queued: they were admitted once, so they
   * return past maxQueuedMessages — by at most what was in flight.
   */
  private readonly returned = new Set<PendingSend>();
  private returnedMessageCount = 0;

  constructor(
    private readonly maxQueuedMessages: number,
    private readonly maxWaitingSends: number,
  ) {
    assert(maxQueuedMessages >= 1, 'maxQueuedMessages must be at least 1');
    assert(maxWaitingSends >= 1, 'maxWaitingSends must be at least 1');
  }

  add(send: PendingSend): void {
    assert(send.messages.length >= 1, 'a send holds a message');
    assert(send.explicitBatch || send.messages.length === 1, 'only an explicit batch holds several messages');
    if (this.waitingForRoom.length >= this.maxWaitingSends) {
      // A caller that does not wait for its sends would otherwise grow this list without bound.
      const limit = this.maxWaitingSends;
      send.reject(new LmqError('LMQ_OVERLOADED', `the producer already has ${limit} sends waiting for room in its queue; wait for earlier sends to complete before sending more`, { maxWaitingSends: limit }));
      return;
    }
    this.waitingForRoom.push(send);
    this.admitWaiting();
  }

  head(): PendingSend | undefined {
    return this.queued[0];
  }

  /** Messages admitted and sends waiting for room (for stats). */
  depth(): { queuedMessages: number; sendsWaitingForRoom: number } {
    return { queuedMessages: this.queuedMessageCount, sendsWaitingForRoom: this.waitingForRoom.length };
  }

  /**
   * Takes the head and every send right behind it that can share its request: same topic, not
   * an explicit batch, within the bounds. The head is always taken, even when larger than
   * maxBytes on its own (its message was checked against the broker's limit when sent).
   */
  takeRun(bounds: RunBounds, stopBefore: (send: PendingSend) => boolean = () => false): PendingSend[] {
    const first = this.queued[0];
    assert(first !== undefined, 'takeRun on an empty queue');
    let count = 1;
    let bytes = first.sizeBytes;
    while (!first.explicitBatch && count < this.queued.length && count < bounds.maxMessages) {
      const next = this.queued[count]!;
      if (next.explicitBatch || next.topic !== first.topic || bytes + next.sizeBytes > bounds.maxBytes || stopBefore(next)) break;
      bytes += next.sizeBytes;
      count++;
    }
    return this.remove(this.queued.splice(0, count));
  }

  /**
   * Puts a refused request's sends back where call order places them: before every queued send
   * called after them (they were taken off the head, so usually at the head itself).
   */
  putBack(sends: readonly PendingSend[]): void {
    for (const send of sends) {
      assert(!this.returned.has(send) && !this.queued.includes(send), 'a send is put back once, after it was taken');
      const at = this.queued.findIndex((queued) => queued.callOrder > send.callOrder);
      this.queued.splice(at === -1 ? this.queued.length : at, 0, send);
      this.returned.add(send);
      this.queuedMessageCount += send.messages.length;
      this.returnedMessageCount += send.messages.length;
    }
  }

  /** Takes the sends at the head whose deadline has passed. */
  takeExpired(nowMs: number): PendingSend[] {
    let count = 0;
    while (count < this.queued.length && this.queued[count]!.deadlineMs <= nowMs) count++;
    return this.remove(this.queued.splice(0, count));
  }

  /** Takes every send of `topic`, queued or waiting for room (its route failed). */
  takeTopic(topic: string): PendingSend[] {
    const taken = [...this.queued.filter((s) => s.topic === topic), ...this.waitingForRoom.filter((s) => s.topic === topic)];
    for (const list of [this.queued, this.waitingForRoom]) {
      const kept = list.filter((s) => s.topic !== topic);
      list.splice(0, list.length, ...kept);
    }
    for (const send of taken) this.forgetReturned(send);
    this.queuedMessageCount = this.queued.reduce((sum, s) => sum + s.messages.length, 0);
    this.admitWaiting();
    return taken;
  }

  private remove(taken: PendingSend[]): PendingSend[] {
    for (const send of taken) {
      this.queuedMessageCount -= send.messages.length;
      this.forgetReturned(send);
    }
    assert(this.queuedMessageCount >= 0, 'queued message count went negative');
    assert(this.queued.length > 0 || this.queuedMessageCount === 0, 'an empty queue holds no messages');
    this.admitWaiting();
    return taken;
  }

  private forgetReturned(send: PendingSend): void {
    if (!this.returned.delete(send)) return;
    this.returnedMessageCount -= send.messages.length;
    assert(this.returnedMessageCount >= 0, 'returned message count went negative');
  }

  /** Admits waiting sends in order while they fit; a send larger than the bound fits an empty queue. */
  private admitWaiting(): void {
    while (this.waitingForRoom.length > 0) {
      const size = this.waitingForRoom[0]!.messages.length;
      if (this.queuedMessageCount > 0 && this.queuedMessageCount + size > this.maxQueuedMessages) break;
      this.queued.push(this.waitingForRoom.shift()!);
      this.queuedMessageCount += size;
    }
    const admitted = this.queuedMessageCount - this.returnedMessageCount;
    assert(admitted <= this.maxQueuedMessages || this.queued.length - this.returned.size === 1, 'the queue stays within maxQueuedMessages, sends put back aside');
  }
}
