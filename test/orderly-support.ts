// Shared by the orderly consumption tests: a listener that records each delivery's processing
// interval, and the two properties every orderly run must keep — no two deliveries of one
// queue overlap in time, and no message is processed before its predecessor succeeded.
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import type { OrderlyListener, OrderlyStatus } from '../src/client/orderly-consumer.js';

export interface Delivery {
  readonly consumer: string;
  readonly queueId: number;
  readonly offset: number;
  readonly body: string;
  readonly reconsumeTimes: number;
  readonly startMs: number;
  endMs: number;
  status: OrderlyStatus | 'threw' | null;
}

/** A listener that records every delivery in `into` and answers with `decide` after `workMs`. */
export function recording(consumer: string, into: Delivery[], workMs: number, decide: (d: Delivery) => OrderlyStatus | 'throw' = () => 'SUCCESS'): OrderlyListener {
  return async (messages, context) => {
    expect(messages).toHaveLength(1);
    const m = messages[0]!;
    expect(context.reconsumeTimes).toBe(m.reconsumeTimes);
    const delivery: Delivery = { consumer, queueId: m.queueId, offset: m.offset, body: Buffer.from(m.body).toString(), reconsumeTimes: m.reconsumeTimes, startMs: performance.now(), endMs: Number.NaN, status: null };
    into.push(delivery);
    await sleep(workMs);
    const answer = decide(delivery);
    delivery.endMs = performance.now();
    delivery.status = answer === 'throw' ? 'threw' : answer;
    if (answer === 'throw') throw new Error(`scripted failure of ${delivery.body}`);
    return answer;
  };
}

/** Per queue, deliveries sorted by start never overlap: each ended before the next began. */
export function expectNoOverlap(deliveries: readonly { queueId: number; startMs: number; endMs: number; consumer: string }[]): void {
  const byQueue = new Map<number, typeof deliveries[number][]>();
  for (const d of deliveries) byQueue.set(d.queueId, [...(byQueue.get(d.queueId) ?? []), d]);
  for (const [queueId, runs] of byQueue) {
    const sorted = [...runs].sort((a, b) => a.startMs - b.startMs);
    for (let i = 1; i < sorted.length; i++) {
      const [a, b] = [sorted[i - 1]!, sorted[i]!];
      expect(Number.isNaN(a.endMs), `a delivery on queue ${queueId} never ended`).toBe(false);
      if (a.endMs > b.startMs) throw new Error(`queue ${queueId}: ${a.consumer}'s delivery [${a.startMs}, ${a.endMs}] overlaps ${b.consumer}'s from ${b.startMs}`);
    }
  }
}

/** No delivery of offset o started before some delivery of o - 1 (in that queue) had succeeded. */
export function expectOrder(deliveries: readonly Delivery[], firstOffset = 0): void {
  const succeededAt = new Map<string, number>();
  for (const d of deliveries) {
    if (d.status !== 'SUCCESS') continue;
    const key = `${d.queueId}/${d.offset}`;
    succeededAt.set(key, Math.min(d.endMs, succeededAt.get(key) ?? Number.POSITIVE_INFINITY));
  }
  for (const d of deliveries) {
    if (d.offset === firstOffset) continue;
    const before = succeededAt.get(`${d.queueId}/${d.offset - 1}`);
    if (before === undefined || before > d.startMs) throw new Error(`${d.body} (queue ${d.queueId} offset ${d.offset}) was delivered before its predecessor succeeded`);
  }
}

let producers = 0;

/** Stores `bodies` in one queue, in order (one produce request per message). */
export async function produceTo(client: LedgerClient, topic: string, queueId: number, bodies: readonly string[]): Promise<void> {
  const producerId = `orderly-test-${process.pid}-${++producers}`;
  for (let i = 0; i < bodies.length; i++) {
    await client.call({ op: 'produce', producerId, seq: i + 1, messages: [{ msgId: `${producerId}-${i}`, topic, queueId, body: Buffer.from(bodies[i]!) }] });
  }
}

export async function committed(client: LedgerClient, group: string, topic: string, queueIds: readonly number[]): Promise<(number | null)[]> {
  const { offsets } = await client.call({ op: 'queryOffsets', group, queues: queueIds.map((queueId) => ({ topic, queueId })) });
  return offsets.map((o) => o.offset);
}
