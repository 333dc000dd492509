// Planted bugs (`chaos --plant KIND`): the checker's self-test under real faults. Each plant
// makes the workload's clients misbehave in one named way a real bug could, while the history
// still records what a correct client would have meant; the run must then be judged invalid
// with that anomaly (bench/planted-bugs.ts runs every plant and fails if one goes unnoticed).
// A plant changes only the chaos workload's own clients, never the broker or the library.
import type { LedgerClient } from '../client/client.js';
import type { ResponseOf, WireRequest } from '../protocol/index.js';

/** Each plant, the anomaly it must produce, and the workload it runs under. */
export const PLANTS = {
  /** Retry consumers drop a failed delivery instead of sending it back. */
  'lost-retry': { workload: 'retry', anomaly: 'lost-retry' },
  /** Retry consumers ask the broker for 3 more redeliveries than the history's limit. */
  'retry-exceeded': { workload: 'retry', anomaly: 'retry-exceeded' },
  /** Retry consumers ask the broker to dead-letter at the first failure. */
  'dlq-early': { workload: 'retry', anomaly: 'dlq-early' },
  /** Simple consumers record acks as confirmed without sending them. */
  'ack-lost': { workload: 'simple', anomaly: 'ack-lost' },
  /** Orderly consumers believe every queue lock they ask for is granted. */
  'orderly-overlap': { workload: 'orderly', anomaly: 'orderly-overlap' },
  /** Transactional producers commit the transactions they record as rolled back. */
  'tx-rolled-back-visible': { workload: 'tx', anomaly: 'tx-rolled-back-visible' },
  /** Tag-filtered consumers pull every tag while recording their filter. */
  'filter-mismatch': { workload: 'filter', anomaly: 'filter-mismatch' },
  /** Keyed producers never hold a key a growth moved: their route lookups lose the growth. */
  'key-reorder': { workload: 'grow', anomaly: 'key-reorder' },
  /** Delayed sends ask for a due time 2 s before the one recorded. */
  'early-delivery': { workload: 'delay', anomaly: 'early-delivery' },
  /** Delayed sends ask for a due time 6 s after the one recorded (past the 5 s lateness bound). */
  'late-delivery': { workload: 'delay', anomaly: 'late-delivery' },
} as const;
export type PlantKind = keyof typeof PLANTS;
export const PLANT_KINDS = Object.keys(PLANTS) as PlantKind[];

/** How many more redeliveries the `retry-exceeded` plant asks for than the history records. */
export const plantedExtraReconsumeTimes = 3;

/** What a delayed send adds to the due time it records, under the delay plants (ms). */
export function plantedDeliverySkewMs(plant: PlantKind | undefined): number {
  return plant === 'early-delivery' ? -2_000 : plant === 'late-delivery' ? 6_000 : 0;
}

/**
 * The `key-reorder` plant: a client whose route answers never name a pending growth, so its
 * producer sends a moved key to its new queue at once instead of holding it.
 */
export function growthIgnoringClient(client: LedgerClient): LedgerClient {
  const call = (async (request: WireRequest, ...rest: [number?, number?, AbortSignal?]) => {
    const reply = await client.call(request, ...rest);
    if (request.op !== 'route') return reply;
    const { growth: _ignored, ...route } = reply as ResponseOf<'route'>;
    return route;
  }) as LedgerClient['call'];
  return new Proxy(client, { get: (target, property, receiver) => (property === 'call' ? call : Reflect.get(target, property, receiver)) });
}

/**
 * The `orderly-overlap` plant: a client whose lockQueues answers that every queue asked for is
 * granted, without asking the broker — a consumer that ignores lock refusals.
 */
export function lockIgnoringClient(client: LedgerClient, leaseMs: number): LedgerClient {
  const call = ((request: WireRequest, ...rest: [number?, number?, AbortSignal?]) => {
    if (request.op !== 'lockQueues') return client.call(request, ...rest);
    const expiresAtMs = Date.now() + leaseMs;
    return Promise.resolve({ locked: request.queues.map((q) => ({ topic: q.topic, queueId: q.queueId, expiresAtMs })) });
  }) as LedgerClient['call'];
  return new Proxy(client, { get: (target, property, receiver) => (property === 'call' ? call : Reflect.get(target, property, receiver)) });
}
