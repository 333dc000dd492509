// How the endpoint sends NORMAL, FIFO and DELAY messages: through one native batching Producer
// (src/client/producer.ts) per caller, so SendMessage calls in flight together leave as one
// produce request (one log entry) instead of one each, and inherit the producer's guarantees —
// a message group (the producer's order key) keeps one queue's order, and every produce names
// the queue count it was routed over, so after `topic update --queues` a group's later messages
// neither reach its old queue past the growth's boundary nor overtake its earlier ones there
// (LMQ_ROUTE_CHANGED, src/broker/topic-growth.ts). Each message keeps the client's message id.
//
// A client resends a message (same message id) after a failed or timed-out send. A resend to
// this endpoint while the first is in flight, or after it was stored, answers the first's
// placement (the last MAX_REMEMBERED_SENDS message ids are remembered); one after a failure is
// sent again. A resend to another node after an unknown outcome may store a second copy
// (at-least-once, as RocketMQ).
import type { LedgerClient } from '../client/client.js';
import { type OutgoingMessage, Producer } from '../client/producer.js';
import type { ProduceMessageWire } from '../protocol/index.js';

/** Message ids whose sends are remembered, per caller (about 100 B each). */
const MAX_REMEMBERED_SENDS = 100_000;
/**
 * Produce requests of one caller in flight at once: while they are out, the sends that arrive
 * wait and leave together as the next request.
 */
const MAX_INFLIGHT_REQUESTS = 4;

export interface Placement {
  /** null for a delayed message (placed when due) and under `leader` quorum. */
  readonly offset: number | null;
}

export class GrpcSender {
  private readonly producer: Producer;
  private readonly recent = new Map<string, Promise<Placement>>();

  constructor(client: LedgerClient, timeoutMs: number, warn: (message: string) => void) {
    this.producer = new Producer(client, timeoutMs, { maxInflightRequests: MAX_INFLIGHT_REQUESTS }, warn);
  }

  /** Sends one message (its queueId is the producer's to choose); messageGroup keeps order. */
  send(message: ProduceMessageWire, messageGroup: string | undefined): Promise<Placement> {
    const known = this.recent.get(message.msgId);
    if (known !== undefined) return known;
    const outgoing: OutgoingMessage = {
      body: message.body,
      msgId: message.msgId,
      ...(message.tag === undefined ? {} : { tag: message.tag }),
      ...(message.keys === undefined ? {} : { keys: message.keys }),
      ...(message.properties === undefined ? {} : { properties: message.properties }),
      ...(message.deliverAtMs === undefined ? {} : { deliverAtMs: message.deliverAtMs }),
      ...(messageGroup === undefined ? {} : { orderKey: messageGroup }),
    };
    const placed = this.producer.send(message.topic, outgoing, messageGroup === undefined ? 'roundRobin' : 'byKey').then((result) => ({ offset: result.offset }));
    this.recent.set(message.msgId, placed);
    if (this.recent.size > MAX_REMEMBERED_SENDS) this.recent.delete(this.recent.keys().next().value!);
    placed.catch(() => {
      if (this.recent.get(message.msgId) === placed) this.recent.delete(message.msgId);
    });
    return placed;
  }
}
