// A producer: picks a queue (round robin, or a hash of the business key so all messages of one
// key keep their order in one queue — RocketMQ's MessageQueueSelector), and sends with an
// idempotent identity (producerId, seq). Retries reuse the seq, so the broker drops
// duplicates; requests in flight together keep their order per queue because the broker
// refuses a seq that skips one (LMQ_OUT_OF_ORDER) until the earlier one arrives.
//
// Sends are queued (send-queue.ts) and leave as produce requests, at most maxInflightRequests
// at once: while requests are out, the sends that arrive wait and then leave together as one
// request (one seq, one log entry) — natural batching, no added latency when nothing waits.
// A request's answer frees its slot, but what waits goes out at the end of the event loop's
// turn, not at once: the answers that arrived together free their slots together and the sends
// they release join what waits, in one request. Dispatching at each answer filled the slots
// with one-message requests while the rest waited, so every other round of the broker
// carried a handful of messages (7 of 8 requests of one message at 256 sends in flight).
//
// A topic that grew (`topic update --queues`, src/broker/topic-growth.ts) moves some keys to
// other queues. Until every group has consumed a moved key's old queue up to the growth (or the
// growth's topic.maxReorderWaitMs ran out), the route names that old queue as held, and a send
// of such a key waits at the head of the queue — with every send behind it, so call order is
// kept — asking the route again every HELD_ROUTE_RECHECK_MS. Past the wait it goes to its new
// queue, and the producer logs that the key's order may break. The route is asked again every
// ROUTE_REFRESH_MS; and every produce names the queue count it was routed over, which a grown
// topic refuses (LMQ_ROUTE_CHANGED, nothing stored): the producer then puts the request's
// sends back at the head of its queue in call order, learns the new route, and sends them
// again — so no key reaches its old queue after the growth's boundary, the one position the
// hold waits for.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LIMITS, type ProduceMessageWire, produceMessageProblem, type ResponseOf, totalBodyBytes, UNSEQUENCED, type EncodedProduceRequest, type RequestOf } from '../protocol/index.js';
import { encodeProduceMessages } from '../protocol/produce-messages.js';
import { ShapeError } from '../protocol/shape-error.js';
import { assert } from '../util/assert.js';
import { isLmqError, LmqError, NOT_SENT } from '../util/errors.js';
import type { LedgerClient } from './client.js';
import { type PendingSend, type ProducerOptions, producerOptions, SendQueue } from './send-queue.js';

export { DEFAULT_PRODUCER_OPTIONS, type ProducerOptions } from './send-queue.js';

export interface OutgoingMessage {
  readonly body: Uint8Array;
  readonly key?: string;
  readonly tag?: string;
  readonly properties?: Readonly<Record<string, string>>;
  /** A delayed message: due at this time (epoch ms), up to 40 days ahead. */
  readonly deliverAtMs?: number;
  /** A delayed message: due after the cluster's delay level N (delay.levels, from 1). */
  readonly delayLevel?: number;
}

export interface SendResult {
  readonly msgId: string;
  readonly queueId: number;
  /** null under `leader` quorum, which acknowledges before the offset is assigned, and for a delayed message. */
  readonly offset: number | null;
  /** A delayed message: when it is due (it gets its offset then). */
  readonly deliverAtMs?: number;
  readonly duplicate: boolean;
}

export type QueueSelector = 'roundRobin' | 'byKey';

/** Sequenced produce requests started (one-way sends aside) and the messages they carried, plus what waits now. */
export interface ProducerStats {
  readonly requests: number;
  readonly messages: number;
  readonly queuedMessages: number;
  readonly sendsWaitingForRoom: number;
}

/** FNV-1a: a stable hash, so a key maps to the same queue in every client and every run. */
export function hashKey(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The request form of one message; the key is indexed as a key. */
function toWire(message: OutgoingMessage, msgId: string, topic: string, queueId: number): ProduceMessageWire {
  return {
    msgId, topic, queueId, body: message.body,
    ...(message.tag ? { tag: message.tag } : {}),
    ...(message.key ? { keys: [message.key] } : {}),
    ...(message.properties ? { properties: message.properties } : {}),
    ...(message.deliverAtMs === undefined ? {} : { deliverAtMs: message.deliverAtMs }),
    ...(message.delayLevel === undefined ? {} : { delayLevel: message.delayLevel }),
  };
}

/** Bodies plus the UTF-8 worst case (3 bytes per UTF-16 unit) of the strings around them. */
function sizeBytes(message: OutgoingMessage): number {
  let textUnits = (message.key?.length ?? 0) + (message.tag?.length ?? 0);
  for (const [name, value] of Object.entries(message.properties ?? {})) textUnits += name.length + value.length;
  return message.body.byteLength + 3 * textUnits;
}

/** How often a topic's route (queue count, growth) is asked again while sends go to it. */
const ROUTE_REFRESH_MS = 30_000;
/** How often a held key's route is asked again (whether its old queue is consumed far enough). */
const HELD_ROUTE_RECHECK_MS = 200;

/** What the producer knows of a topic's queues. */
interface KnownRoute {
  readonly queues: number;
  /** A growth whose wait is on: keys moving off a held old queue wait until untilMs (monotonic). */
  readonly growth?: { readonly fromQueues: number; readonly held: ReadonlySet<number>; readonly untilMs: number };
  readonly fetchedAtMs: number;
}

export class Producer {
  private producerId = '';
  private nextSeq = 1;
  /** Requests of the current session not yet answered. */
  private inflightRequests = 0;
  /**
   * Requests of ended sessions not yet settled. The new session sends nothing until they
   * have: one of them may still be stored, and anything sent meanwhile could land before it,
   * out of call order.
   */
  private endedSessionRequests = 0;
  /** Aborted when the session ends: its requests stop retrying (they would only wait on the failed seq). */
  private sessionAbandon = new AbortController();
  private oneWayCount = 0;
  private roundRobin = 0;
  private readonly options: ProducerOptions;
  private readonly queue: SendQueue;
  private readonly routes = new Map<string, KnownRoute>();
  private readonly routeLookups = new Map<string, Promise<KnownRoute>>();
  /** Growths (topic, from and to queue counts) whose wait ran out with a key still held: logged once each. */
  private readonly reorderWarned = new Set<string>();
  /** The head's topic has no queue count yet: nothing overtakes it, the pump resumes when it comes. */
  private waitingForRoute = false;
  /** A pump is due at the end of this event-loop turn (schedulePump). */
  private pumpScheduled = false;
  private requestCount = 0;
  private messageCount = 0;
  /** Sends enqueued so far: each send's place in call order, kept when a refused request's sends go back. */
  private sendCount = 0;
  /** Per topic, the queue count its unsettled produce requests (of any session) were routed over, and how many. */
  private readonly inflightRoutes = new Map<string, { queues: number; requests: number }>();

  constructor(
    private readonly client: LedgerClient,
    private readonly timeoutMs: number,
    options: Partial<ProducerOptions> = {},
    /** Where the producer logs what a user should know (a key's order that may break after a growth). */
    private readonly warn: (message: string) => void = (message) => process.emitWarning(message),
  ) {
    this.options = producerOptions(options);
    this.queue = new SendQueue(this.options.maxQueuedMessages, this.options.maxWaitingSends);
    this.newSession();
  }

  /** Sends one message and resolves once the broker acknowledged it under its quorum mode. */
  async send(topic: string, message: OutgoingMessage, selector: QueueSelector = 'roundRobin'): Promise<SendResult> {
    const [result] = await this.enqueue(topic, [message], selector, false);
    assert(result !== undefined, 'a send resolves with its result');
    return result;
  }

  /**
   * Sends messages as one batch: one request of its own, one log entry, one queue (chosen by
   * the first message's key, or round robin), stored all or none, in this order.
   */
  async sendBatch(topic: string, messages: readonly OutgoingMessage[], selector: QueueSelector = 'roundRobin'): Promise<SendResult[]> {
    return this.enqueue(topic, messages, selector, true);
  }

  /**
   * One-way (RocketMQ's sendOneway): hands the message to the leader believed current and
   * returns at once. At most once: no retry, no deduplication, no acknowledgement — for data
   * that may be lost (metrics, logs), never for what must arrive.
   */
  sendOneWay(topic: string, queueId: number, message: OutgoingMessage): void {
    const msgId = `${this.producerId}-oneway-${this.oneWayCount++}`;
    const wire = toWire(message, msgId, topic, queueId);
    // Checked here as send's messages are (checkSend): nothing answers a one-way send, so a
    // message the broker would refuse is refused to its caller, at once.
    const problem = produceMessageProblem(wire);
    if (problem !== undefined) throw new LmqError('LMQ_BAD_INPUT', `one-way message for topic "${topic.slice(0, 200)}" cannot be sent: ${problem}`);
    this.client.callOnce(produceRequest(this.producerId, UNSEQUENCED, [wire], undefined)).catch(() => undefined);
  }

  stats(): ProducerStats {
    return { requests: this.requestCount, messages: this.messageCount, ...this.queue.depth() };
  }

  private enqueue(topic: string, messages: readonly OutgoingMessage[], selector: QueueSelector, explicitBatch: boolean): Promise<SendResult[]> {
    this.checkSend(topic, messages, selector);
    const result = new Promise<SendResult[]>((resolve, reject) => {
      const size = messages.reduce((sum, message) => sum + sizeBytes(message), 0);
      this.queue.add({ topic, messages, selector, explicitBatch, sizeBytes: size, deadlineMs: performance.now() + this.timeoutMs, callOrder: this.sendCount++, resolve, reject });
    });
    this.queueCount(topic).catch(() => undefined); // asked now, so it is likely known when the send reaches the head
    // Nothing out and nothing due: the send goes at once (no latency added to a lone send).
    if (this.inflightRequests === 0 && !this.pumpScheduled) this.pump();
    else this.schedulePump();
    return result;
  }

  /** Refuses a send the broker would refuse, before it can share a request with others (LMQ_BAD_INPUT). */
  private checkSend(topic: string, messages: readonly OutgoingMessage[], selector: QueueSelector): void {
    const { maxMessagesPerProduce, maxProduceBodyBytes } = LIMITS;
    if (messages.length === 0) throw new LmqError('LMQ_BAD_INPUT', 'a batch needs at least one message');
    if (messages.length > maxMessagesPerProduce) throw new LmqError('LMQ_BAD_INPUT', `a batch holds at most ${maxMessagesPerProduce} messages, not ${messages.length}`);
    if (selector === 'byKey' && messages[0]!.key === undefined) throw new LmqError('LMQ_BAD_INPUT', 'selecting the queue by key needs a key (--key)');
    const bodyBytes = totalBodyBytes(messages);
    if (bodyBytes > maxProduceBodyBytes) throw new LmqError('LMQ_BAD_INPUT', `a batch's bodies total ${bodyBytes} bytes, more than ${maxProduceBodyBytes}`);
    messages.forEach((message, i) => {
      // msgId and queue are chosen at dispatch and always valid; a sample stands in for them.
      const problem = produceMessageProblem(toWire(message, `${this.producerId}-${this.nextSeq}`, topic, 0));
      if (problem !== undefined) throw new LmqError('LMQ_BAD_INPUT', `message ${i} for topic "${topic.slice(0, 200)}" cannot be sent: ${problem}`);
    });
  }

  /** Starts requests from the head of the queue while the session has room for them. */
  private pump(): void {
    while (this.endedSessionRequests === 0 && this.inflightRequests < this.options.maxInflightRequests) {
      for (const expired of this.queue.takeExpired(performance.now())) {
        expired.reject(new LmqError('LMQ_UNAVAILABLE', `send not started within ${this.timeoutMs} ms: the producer's earlier requests took that long; is the cluster running?`, NOT_SENT));
      }
      const head = this.queue.head();
      if (head === undefined) return;
      const route = this.routes.get(head.topic);
      if (route === undefined) return this.awaitRoute(head.topic);
      if (performance.now() - route.fetchedAtMs >= ROUTE_REFRESH_MS) this.lookupRoute(head.topic, false).catch(() => undefined);
      if (this.isHeld(head, route)) return this.awaitRoute(head.topic, Math.min(HELD_ROUTE_RECHECK_MS, route.growth!.untilMs - performance.now()));
      // A request routed over another queue count may still be refused and sent again: one
      // routed over the new count meanwhile could be stored before it, out of call order.
      const inflight = this.inflightRoutes.get(head.topic);
      if (inflight !== undefined && inflight.queues !== route.queues) return; // resumes as they settle
      const bounds = { maxMessages: this.options.maxBatchMessages, maxBytes: this.options.maxBatchBytes };
      this.dispatch(this.queue.takeRun(bounds, (send) => this.isHeld(send, route)), route.queues);
    }
  }

  /** Asks for the topic's route (after pauseMs: a held key's recheck), then pumps again; one at a time. */
  private awaitRoute(topic: string, pauseMs = 0): void {
    if (this.waitingForRoute) return;
    this.waitingForRoute = true;
    const known = this.routes.has(topic);
    sleep(Math.max(0, pauseMs))
      .then(() => this.lookupRoute(topic, !known))
      .catch(() => undefined) // a first lookup that failed failed the topic's sends; a recheck keeps what was known
      .finally(() => {
        this.waitingForRoute = false;
        this.pump();
      });
  }

  /** Whether the send's key moved to another queue by a growth whose wait is on for its old queue. */
  private isHeld(send: PendingSend, route: KnownRoute): boolean {
    const growth = route.growth;
    if (send.selector !== 'byKey' || growth === undefined) return false;
    const hash = hashKey(send.messages[0]!.key!);
    const oldQueue = hash % growth.fromQueues;
    if (oldQueue === hash % route.queues || !growth.held.has(oldQueue)) return false;
    if (performance.now() < growth.untilMs) return true;
    const which = `${send.topic}\u0000${growth.fromQueues}\u0000${route.queues}`;
    if (!this.reorderWarned.has(which)) {
      this.reorderWarned.add(which);
      const queues = [...growth.held].join(', ');
      this.warn(`topic ${send.topic} grew from ${growth.fromQueues} to ${route.queues} queues and its groups had not consumed queues ${queues} up to the change within topic.maxReorderWaitMs: keys that moved off them go to their new queues now, and their order may break`);
    }
    return false;
  }

  /** One request for the run: one seq, taken in dispatch order, so seqs follow the queue's order. */
  private dispatch(run: readonly PendingSend[], queues: number): void {
    const session = this.producerId;
    const seq = this.nextSeq++;
    const wire = this.wireMessages(run, session, seq, queues);
    this.inflightRequests++;
    this.requestCount++;
    this.messageCount += wire.length;
    const timeoutMs = Math.max(1, run[0]!.deadlineMs - performance.now());
    // The client retries redirects, lost connections and LMQ_OUT_OF_ORDER (an earlier seq of
    // ours is still on its way) with the same seq until the deadline.
    const topic = run[0]!.topic;
    const routed = this.inflightRoutes.get(topic) ?? { queues, requests: 0 };
    assert(routed.queues === queues, 'requests in flight to a topic share one queue count');
    this.inflightRoutes.set(topic, { queues, requests: routed.requests + 1 });
    this.client.call(produceRequest(session, seq, wire, queues), timeoutMs, undefined, this.sessionAbandon.signal).then(
      (reply) => settle(run, wire, reply),
      (error: unknown) => {
        if (isLmqError(error, 'LMQ_ROUTE_CHANGED')) {
          // The topic grew: nothing was stored. Refused at apply, the seq was taken and the
          // session goes on; refused before the log (leader quorum), later seqs would wait on
          // it, so a new session starts once this one's requests settle. Either way nothing is
          // routed over the new count before the requests routed over the old one settle (pump).
          if (error.details['seqRecorded'] !== true) this.endSession(session);
          this.routes.delete(topic);
          this.queue.putBack(run);
          return;
        }
        // Whether this seq failed for sure or its outcome is unknown, later seqs would wait on
        // it: the producer starts a fresh session (an unknown outcome may then be stored twice,
        // under two msgIds — at-least-once). Sends still queued go on in the new session.
        this.endSession(session);
        for (const send of run) send.reject(error);
      },
    ).finally(() => {
      if (session === this.producerId) this.inflightRequests--;
      else this.endedSessionRequests--;
      const left = this.inflightRoutes.get(topic)!.requests - 1;
      if (left === 0) this.inflightRoutes.delete(topic);
      else this.inflightRoutes.set(topic, { queues, requests: left });
      assert(this.inflightRequests >= 0 && this.endedSessionRequests >= 0, 'in-flight requests went negative');
      this.schedulePump();
    });
  }

  /** Pumps once at the end of this event-loop turn, with every send and freed slot of the turn. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Each send keeps its own queue (an explicit batch one for all) and msgId. */
  private wireMessages(run: readonly PendingSend[], session: string, seq: number, queues: number): ProduceMessageWire[] {
    const total = run.reduce((sum, send) => sum + send.messages.length, 0);
    const wire: ProduceMessageWire[] = [];
    for (const send of run) {
      const key = send.messages[0]!.key;
      const queueId = send.selector === 'byKey' ? hashKey(key!) % queues : this.roundRobin++ % queues;
      for (const message of send.messages) wire.push(toWire(message, `${session}-${seq}${total > 1 ? `.${wire.length}` : ''}`, send.topic, queueId));
    }
    assert(wire.length === total, 'one wire message per message');
    assert(wire.every((m) => m.msgId.length <= LIMITS.maxIdLength), 'msgIds stay within maxIdLength');
    return wire;
  }

  /** Starts a new session unless `session` is already over (a late failure of an old one). */
  private endSession(session: string): void {
    if (session === this.producerId) this.newSession();
  }

  /** The topic's queue count: asked once, then kept (and asked again every ROUTE_REFRESH_MS). */
  private queueCount(topic: string): Promise<number> {
    const known = this.routes.get(topic);
    if (known !== undefined) return Promise.resolve(known.queues);
    return this.lookupRoute(topic, true).then((route) => route.queues);
  }

  /**
   * Asks for the topic's route, one ask at a time per topic. A failed first ask is not kept and
   * (failSends) fails the sends of that topic waiting now — the same ask would fail them all;
   * other topics go on. A failed later ask keeps what was known.
   */
  private lookupRoute(topic: string, failSends: boolean): Promise<KnownRoute> {
    let lookup = this.routeLookups.get(topic);
    if (lookup === undefined) {
      lookup = this.client.call({ op: 'route', topic }, this.timeoutMs).then((reply): KnownRoute => {
        const fetchedAtMs = performance.now();
        const growth = reply.growth === undefined ? undefined : { fromQueues: reply.growth.fromQueues, held: new Set(reply.growth.heldQueues), untilMs: fetchedAtMs + reply.growth.remainingMs };
        return { queues: reply.queues, fetchedAtMs, ...(growth === undefined ? {} : { growth }) };
      });
      this.routeLookups.set(topic, lookup);
      lookup.then(
        (route) => {
          assert(Number.isSafeInteger(route.queues) && route.queues >= 1, 'a topic has at least one queue');
          this.routes.set(topic, route);
          this.routeLookups.delete(topic);
        },
        (error: unknown) => {
          this.routeLookups.delete(topic);
          if (!failSends) return;
          const refusal = unsent(error);
          for (const send of this.queue.takeTopic(topic)) send.reject(refusal);
          this.pump();
        },
      );
    }
    return lookup;
  }

  private newSession(): void {
    this.sessionAbandon.abort();
    this.sessionAbandon = new AbortController();
    this.endedSessionRequests += this.inflightRequests;
    this.producerId = randomBytes(8).toString('hex');
    this.nextSeq = 1;
    this.inflightRequests = 0;
  }
}

/**
 * A send failed because its topic's queue count could not be learnt never left: whatever the
 * lookup's own outcome, the send's is known (nothing stored).
 */
function unsent(error: unknown): unknown {
  if (!isLmqError(error) || !error.indeterminate) return error;
  return new LmqError(error.code, `not sent, as the topic's queues could not be learnt: ${error.message}`, { ...error.details, ...NOT_SENT }, { cause: error });
}

/**
 * The produce request for `messages`: with them in their binary form (produce-messages.ts), which
 * the leader copies into the log where it would decode maps and encode the messages again —
 * unless one has a delay level, which only the leader resolves, or a string UTF-8 cannot carry
 * (then as maps, for the broker to refuse with its reason, as it refuses any such message).
 */
function produceRequest(producerId: string, seq: number, messages: readonly ProduceMessageWire[], routedQueues: number | undefined): RequestOf<'produce'> | EncodedProduceRequest {
  const request = routedQueues === undefined ? { op: 'produce' as const, producerId, seq } : { op: 'produce' as const, producerId, seq, routedQueues };
  if (messages.some((message) => message.delayLevel !== undefined)) return { ...request, messages: [...messages] };
  try {
    return { ...request, encoded: encodeProduceMessages(messages) };
  } catch (error) {
    if (error instanceof ShapeError) return { ...request, messages: [...messages] };
    throw error;
  }
}

/** Resolves each send with its own results, from the reply's placements in request order. */
function settle(run: readonly PendingSend[], wire: readonly ProduceMessageWire[], reply: ResponseOf<'produce'>): void {
  // A duplicate older than the broker's window is acknowledged without its offsets.
  const { offsets, deliverAtMs } = reply;
  assert(offsets.length === wire.length || (reply.duplicate && offsets.length === 0), 'one offset per message');
  assert(deliverAtMs === undefined || deliverAtMs.length === offsets.length, 'one due time per message');
  let at = 0;
  for (const send of run) {
    const results = send.messages.map((): SendResult => {
      const message = wire[at]!;
      const due = deliverAtMs?.[at];
      const offset = offsets[at++] ?? null;
      return due === undefined || due === null
        ? { msgId: message.msgId, queueId: message.queueId, offset, duplicate: reply.duplicate }
        : { msgId: message.msgId, queueId: message.queueId, offset, deliverAtMs: due, duplicate: reply.duplicate };
    });
    send.resolve(results);
  }
  assert(at === wire.length, 'every message settled');
}
