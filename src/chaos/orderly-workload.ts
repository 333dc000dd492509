// The orderly workload (`chaos --workload orderly`): orderly consumers of one group (src/client's
// OrderlyConsumer: one worker per queue it holds the broker's lock of) that suspend a seeded
// fraction of deliveries (the same message comes again after suspendMs), while consumers are
// killed mid-listener and replaced (consumer-churn.ts) and the run's faults move the
// leadership. Every listener call is an orderly `consume` operation; a call the consumer
// aborts because its lease view ran out ends `info` at that moment. The checker's
// orderly-overlap then finds any two calls of one queue at once, or a message processed before
// its predecessor succeeded.
import type { ConsumeValue } from '../checker/index.js';
import { type OrderlyMessage, OrderlyConsumer } from '../client/orderly-consumer.js';
import type { Rng } from '../sim/rng.js';
import { assert } from '../util/assert.js';
import { lockIgnoringClient, type PlantKind } from './plants.js';
import { type ChurnSettings, type ConsumerFactory, ConsumerChurn } from './consumer-churn.js';
import { queueName, type WorkloadContext } from './workload.js';

export interface OrderlySettings extends ChurnSettings {
  readonly group: string;
  /** Chance that one delivery suspends. */
  readonly suspendChance: number;
  readonly suspendMs: number;
  /** Short, so a killed consumer's queues move on within the run (the broker's lease). */
  readonly lockLeaseMs: number;
}

export const DEFAULT_ORDERLY_SETTINGS: OrderlySettings = Object.freeze({
  group: 'chaos-orderly',
  consumers: 3,
  suspendChance: 0.1,
  suspendMs: 100,
  lockLeaseMs: 3_000,
  handleMaxMs: 10,
  killMinMs: 2_000,
  killMaxMs: 5_000,
  // Longer than a killed consumer keeps its queues: its 3 s lock lease, the 3 s session and a
  // 1 s rebalance round — quiet before that would leave its queues unread.
  quietMs: 8_000,
  quiesceMaxMs: 60_000,
});

/**
 * Between one producer's sends: one worker per queue, committing after each message and
 * pausing 100 ms per suspend, consumes about 40 messages/s per queue; four producers at this
 * pace send about 80/s, so the group keeps up and is quiet soon after the faults.
 */
export const orderlySendPauseMs = 50;

/** No limit: orderly retries never dead-letter in this workload (the default, as RocketMQ's). */
const unlimitedReconsumeTimes = Number.MAX_SAFE_INTEGER;

export function orderlyConsumers(context: WorkloadContext, settings: OrderlySettings, rng: Rng, log: (line: string) => void, plant?: PlantKind): ConsumerChurn {
  const results = rng.fork();
  const factory: ConsumerFactory = (client, consumerId, call) =>
    new OrderlyConsumer(
      plant === 'orderly-overlap' ? lockIgnoringClient(client, settings.lockLeaseMs) : client,
      { topic: context.settings.topic, group: settings.group, consumerId, from: 'first', lockLeaseMs: settings.lockLeaseMs, suspendMs: settings.suspendMs, pollWaitMs: context.settings.pollWaitMs },
      async (messages: readonly OrderlyMessage[], { signal }) => {
        assert(messages.length === 1, 'the orderly workload consumes one message per call');
        const message = messages[0]!;
        const value: ConsumeValue = {
          queue: queueName(message.topic, message.queueId), offset: message.offset, body: Buffer.from(message.body).toString('utf8'),
          reconsumeTimes: message.reconsumeTimes, maxReconsumeTimes: unlimitedReconsumeTimes, orderly: true,
        };
        const aborted = signal.aborted ? Promise.resolve() : new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        const result = await call({ value, aborted, result: () => (results.next() < settings.suspendChance ? 'SUSPEND' : 'SUCCESS') });
        return result === 'SUCCESS' ? 'SUCCESS' : 'SUSPEND';
      },
    );
  return new ConsumerChurn(context, settings, factory, rng, log);
}
