// The retry workload (`chaos --workload retry`): push consumers of one group (src/client's
// PushConsumer, concurrent mode) whose listener fails a seeded fraction of deliveries
// (RECONSUME_LATER: the broker stores a retry copy, or past maxReconsumeTimes a dead letter),
// while consumers are killed mid-listener and replaced (consumer-churn.ts), under the run's
// faults. After the faults the consumers go on until the group is quiet, then the group's
// dead-letter queue is read whole (`dlq`).
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConsumeValue, DeadLetterMessage } from '../checker/index.js';
import type { LedgerClient } from '../client/client.js';
import { type PushMessage, PushConsumer } from '../client/push-consumer.js';
import type { Rng } from '../sim/rng.js';
import { assert } from '../util/assert.js';
import { type PlantKind, plantedExtraReconsumeTimes } from './plants.js';
import { type ChurnSettings, type ConsumerFactory, ConsumerChurn } from './consumer-churn.js';
import { queueName, describeError, failedOutcome, type WorkloadContext } from './workload.js';

export interface RetrySettings extends ChurnSettings {
  readonly group: string;
  /** Listener calls in progress at once, per consumer. */
  readonly consumeConcurrency: number;
  /** Chance that one delivery fails (RECONSUME_LATER). */
  readonly failChance: number;
  readonly maxReconsumeTimes: number;
}

export const DEFAULT_RETRY_SETTINGS: RetrySettings = Object.freeze({
  group: 'chaos-retry',
  consumers: 3,
  consumeConcurrency: 4,
  failChance: 0.3,
  maxReconsumeTimes: 2,
  handleMaxMs: 20,
  killMinMs: 1_500,
  killMaxMs: 4_000,
  // Longer than a killed consumer keeps its queues (3 s session, then up to a 1 s rebalance
  // round) plus the longest retry level: quiet before that would leave its messages unread.
  quietMs: 6_000,
  quiesceMaxMs: 60_000,
});

/**
 * Short delay levels, so that a run sees retries come back and messages reach the DLQ (retry
 * n waits level n + 2). The cluster's config must carry them (runner.ts).
 */
export const retryDelayLevels = '100ms 200ms 300ms 400ms 500ms 600ms';

/** The group's push consumers, failing settings.failChance of their deliveries. */
export function retryConsumers(context: WorkloadContext, settings: RetrySettings, rng: Rng, log: (line: string) => void, plant?: PlantKind): ConsumerChurn {
  const results = rng.fork();
  // What the consumers ask the broker for; the history records settings.maxReconsumeTimes.
  const askedMaxReconsumeTimes = plant === 'retry-exceeded' ? settings.maxReconsumeTimes + plantedExtraReconsumeTimes : plant === 'dlq-early' ? 0 : settings.maxReconsumeTimes;
  const factory: ConsumerFactory = (client, consumerId, call) =>
    new PushConsumer(
      client,
      {
        topic: context.settings.topic, group: settings.group, from: 'first', consumerId, batchSize: 1,
        consumeConcurrency: settings.consumeConcurrency, maxReconsumeTimes: askedMaxReconsumeTimes,
        pollWaitMs: context.settings.pollWaitMs, commitIntervalMs: 200, redeliverAfterMs: 500, maxRetryBackoffMs: 500,
      },
      async (messages: readonly PushMessage[]) => {
        assert(messages.length === 1, 'the retry workload consumes one message per call');
        const message = messages[0]!;
        const value: ConsumeValue = {
          queue: queueName(message.topic, message.queueId), offset: message.offset, body: Buffer.from(message.body).toString('utf8'),
          reconsumeTimes: message.reconsumeTimes, maxReconsumeTimes: settings.maxReconsumeTimes,
        };
        const result = await call({ value, result: () => (results.next() < settings.failChance ? 'RECONSUME_LATER' : 'SUCCESS') });
        return result === 'SUCCESS' || plant === 'lost-retry' ? 'SUCCESS' : 'RECONSUME_LATER';
      },
    );
  return new ConsumerChurn(context, settings, factory, rng, log);
}

/**
 * Reads the group's dead-letter queue whole as one `dlq` operation (each dead letter's body and
 * attempts), retrying as a new process after a failed attempt; returns whether it was recorded ok.
 */
export async function readDeadLetters(context: Omit<WorkloadContext, 'stopped'>, group: string, attemptsMax: number): Promise<boolean> {
  const { recorder, settings } = context;
  const client = context.newClient();
  const topic = `%DLQ%${group}`;
  const queue = queueName(topic, 0);
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    const process = recorder.newProcess('dead letters');
    recorder.invokeDlq(process, queue);
    try {
      recorder.dlqOk(process, queue, await readWholeDlq(client, topic, settings.opTimeoutMs));
      return true;
    } catch (error) {
      recorder.dlqFailed(failedOutcome(error), process, queue, describeError(error));
      await sleep(200);
    }
  }
  return false;
}

async function readWholeDlq(client: LedgerClient, topic: string, timeoutMs: number): Promise<DeadLetterMessage[]> {
  const topics = await client.call({ op: 'topics' }, timeoutMs);
  if (!topics.topics.some((t) => t.topic === topic)) return []; // no message was ever dead-lettered
  const letters: DeadLetterMessage[] = [];
  let position = 0;
  for (;;) {
    const batch = await client.call({ op: 'pull', topic, queueId: 0, offset: position, maxMessages: 256, maxBytes: 1 << 20, waitMs: 0 }, timeoutMs);
    if (batch.startOffset !== position) throw new Error(`the dead-letter queue starts at ${batch.startOffset}, not ${position}: retention took dead letters`);
    for (const m of batch.messages) {
      assert(m.deadLetter !== undefined, 'a dead-letter queue holds dead letters');
      letters.push({ offset: m.offset, body: Buffer.from(m.body).toString('utf8'), attempts: m.deadLetter.attempts });
    }
    const last = batch.messages[batch.messages.length - 1];
    if (last === undefined) break;
    position = last.offset + 1;
  }
  return letters;
}
