// The chaos workload: keyed producers (several keys per queue, so order within a queue
// matters), one consumer per queue committing the group's offsets, and the final drains.
// Every operation is recorded honestly: `ok` only when the broker said so, `fail` only when it
// definitely did not happen, anything uncertain `info` — after which the worker goes on under
// a new process number. Each invoke is recorded BEFORE the request leaves.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReadMessage } from '../checker/index.js';
import type { LedgerClient } from '../client/client.js';
import { hashKey, Producer } from '../client/producer.js';
import type { SubscriptionFilter } from '../filter/index.js';
import type { Rng } from '../sim/rng.js';
import { assert } from '../util/assert.js';
import { isLmqError } from '../util/errors.js';
import { growthIgnoringClient } from './plants.js';
import type { HistoryRecorder } from './recorder.js';

export interface WorkloadSettings {
  readonly topic: string;
  readonly queues: number;
  /** Business keys; each send picks one, its queue is hash(key) mod queues. */
  readonly keys: number;
  /** Bound on one operation, retries and leader changes included; past it the outcome is info. */
  readonly opTimeoutMs: number;
  /** Pause between one producer's sends. */
  readonly sendPauseMs: number;
  /** Longest one consumer pull waits on the broker for new messages. */
  readonly pollWaitMs: number;
  /**
   * A pause after each poll that returned messages, by the consumers of the topic's first
   * `queues` queues: they lag behind by about this long, so a growth finds unread messages in
   * the old queues while the new queues' consumers keep up (the grow workload). 0: none.
   */
  readonly pollPauseMs: number;
  readonly pullMessagesMax: number;
  /** Drain attempts per queue before the queue is left undrained (verdict: unknown). */
  readonly drainAttemptsMax: number;
  /** Each body is its unique name padded to this many bytes (0: the name alone). */
  readonly messageBytes: number;
  /**
   * The delay workload: each send is delayed by a drawn 0..delayMaxMs, and reads record each
   * message's storeTimestampMs (when the broker placed it). 0: no delayed sends.
   */
  readonly delayMaxMs: number;
  /**
   * A planted bug (plants.ts): what each delayed send adds to the due time it asks the broker
   * for, over the one it records. 0 in every honest run.
   */
  readonly plantedDeliverySkewMs: number;
  /** The filter workload: each send draws one of these tags ([]: untagged). */
  readonly tags: readonly string[];
  /** The filter workload: consumers subscribe with this tag filter, `a || b` ([]: no filter). */
  readonly filterTags: readonly string[];
  /**
   * The filter workload: the consumers of odd queues subscribe with this SQL92 expression
   * instead, over the `level` property every tagged send carries (its tag's place in `tags`,
   * from 1); it must admit exactly `filterTags`, which their polls record. '': tag filters only.
   */
  readonly filterSql: string;
  /** A planted bug (plants.ts): the pulls ask for every tag (or SQL TRUE) while the polls record filterTags. */
  readonly plantedUnfilteredPulls: boolean;
  /**
   * The grow workload: mid-run the topic grows to this many queues (0: it never grows), and
   * sends name their topic and key, the queue being the producer's choice.
   */
  readonly growToQueues: number;
  /** A planted bug (plants.ts): the producers' route lookups lose the growth, so moved keys are never held. */
  readonly plantedIgnoreGrowth: boolean;
}

export interface WorkloadContext {
  readonly settings: WorkloadSettings;
  readonly recorder: HistoryRecorder;
  /** A fresh client (own connections), closed by the runner at the end. */
  readonly newClient: () => LedgerClient;
  /** True once the workers must stop issuing operations. */
  readonly stopped: () => boolean;
}

export function queueName(topic: string, queueId: number): string {
  return `${topic}/${queueId}`;
}

/** One line naming an error, for the history's `error` field. */
export function describeError(error: unknown): string {
  if (isLmqError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * How a failed operation is recorded: `fail` only when the error says the outcome is known
 * (the catalogue's `indeterminate` flag, cleared where nothing was sent), `info` otherwise —
 * timeouts, lost connections, LMQ_LEADERSHIP_LOST, and any error that is not an LmqError.
 */
export function failedOutcome(error: unknown): 'fail' | 'info' {
  return isLmqError(error) && !error.indeterminate ? 'fail' : 'info';
}

/** Sends unique bodies `p<worker>-<n>` one at a time until stopped. */
export async function runProducer(context: WorkloadContext, worker: number, rng: Rng): Promise<void> {
  const { settings, recorder } = context;
  const lane = `producer ${worker}`;
  const client = settings.plantedIgnoreGrowth ? growthIgnoringClient(context.newClient()) : context.newClient();
  const producer = new Producer(client, settings.opTimeoutMs);
  let process = recorder.newProcess(lane);
  for (let n = 0; !context.stopped() && !recorder.full; n++) {
    const key = `k${rng.int(settings.keys)}`;
    if (settings.growToQueues > 0) {
      process = await sendKeyed(context, producer, process, lane, key, `p${worker}-${n}`);
      if (settings.sendPauseMs > 0) await sleep(settings.sendPauseMs);
      continue;
    }
    const queue = queueName(settings.topic, hashKey(key) % settings.queues);
    const body = `p${worker}-${n}`.padEnd(settings.messageBytes, '.');
    // Drawn before the invoke is recorded; the due time is counted from the invoke on both clocks.
    const delayMs = settings.delayMaxMs > 0 ? rng.int(settings.delayMaxMs + 1) : 0;
    const delay = settings.delayMaxMs > 0 ? { delayMs, deliverAtMs: Date.now() + delayMs } : undefined;
    const tag = settings.tags.length > 0 ? settings.tags[rng.int(settings.tags.length)] : undefined;
    recorder.invokeSend(process, queue, body, delay, tag);
    try {
      const message = {
        body: Buffer.from(body), key,
        ...(delay === undefined ? {} : { deliverAtMs: delay.deliverAtMs + settings.plantedDeliverySkewMs }),
        ...(tag === undefined ? {} : { tag, properties: { level: String(settings.tags.indexOf(tag) + 1) } }),
      };
      const sent = await producer.send(settings.topic, message, 'byKey');
      assert(queueName(settings.topic, sent.queueId) === queue, 'the producer picks the queue of the key');
      recorder.sendOk(process, queue, body, sent.offset);
    } catch (error) {
      const outcome = failedOutcome(error);
      recorder.sendFailed(outcome, process, queue, body, describeError(error));
      if (outcome === 'info') process = recorder.newProcess(lane);
    }
    if (settings.sendPauseMs > 0) await sleep(settings.sendPauseMs);
  }
}

/**
 * One send of the grow workload: its queue is the producer's to pick (by key, over the route it
 * knows), so the invoke names the topic and key and the ok the queue. Returns the process to go
 * on with (a new one after an info).
 */
async function sendKeyed(context: WorkloadContext, producer: Producer, process: number, lane: string, key: string, body: string): Promise<number> {
  const { settings, recorder } = context;
  recorder.invokeKeyedSend(process, settings.topic, key, body);
  try {
    const sent = await producer.send(settings.topic, { body: Buffer.from(body), key }, 'byKey');
    assert(hashKey(key) % settings.queues === sent.queueId || hashKey(key) % settings.growToQueues === sent.queueId, 'the producer picks the key\'s queue of one of the two counts');
    recorder.sendOk(process, queueName(settings.topic, sent.queueId), body, sent.offset);
    return process;
  } catch (error) {
    const outcome = failedOutcome(error);
    recorder.keyedSendFailed(outcome, process, settings.topic, key, body, describeError(error));
    return outcome === 'info' ? recorder.newProcess(lane) : process;
  }
}

/**
 * One consumer of the group on one queue: resumes at the group's committed offset (a poll
 * with `from`), polls forward, commits after recording each poll. After an uncertain poll it
 * restarts as a new process from the committed offset.
 */
export async function runConsumer(context: WorkloadContext, group: string, queueId: number): Promise<void> {
  const { settings, recorder } = context;
  const lane = `consumer ${queueId}`;
  const client = context.newClient();
  const queue = queueName(settings.topic, queueId);
  let process = recorder.newProcess(lane);
  let position: number | null = null;
  let resumed = true;
  while (!context.stopped() && !recorder.full) {
    if (position === null) {
      position = await committedPosition(client, settings, group, queueId);
      resumed = true;
      if (position === null) {
        await sleep(100); // no leader yet; nothing was recorded, so the process stays
        continue;
      }
    }
    recorder.invokeRead(process, 'poll', queue, resumed ? position : undefined, settings.filterTags);
    let read: PulledBatch;
    try {
      read = await pull(client, settings, queueId, position, settings.pollWaitMs, settings.filterTags);
    } catch (error) {
      const outcome = failedOutcome(error);
      recorder.readFailed(outcome, process, 'poll', queue, describeError(error));
      if (outcome === 'info') process = recorder.newProcess(lane);
      position = null; // resume from the committed offset, as a restarted consumer would
      continue;
    }
    const { messages } = read;
    recorder.readOk(process, 'poll', queue, messages, read.minOffset);
    resumed = false;
    const last = messages[messages.length - 1];
    // A filtered pull moves past what it skipped even when it returns nothing (nextBeginOffset).
    const next: number | undefined = settings.filterTags.length > 0 ? read.nextBeginOffset : last === undefined ? undefined : last.offset + 1;
    if (next === undefined || next === position) continue;
    position = next;
    // A failed commit only means a restarted consumer re-reads; the history does not include it.
    await client.call({ op: 'commitOffsets', group, offsets: [{ topic: settings.topic, queueId, offset: position }] }, settings.opTimeoutMs).catch(() => undefined);
    if (settings.pollPauseMs > 0 && messages.length > 0 && queueId < settings.queues) await sleep(settings.pollPauseMs);
  }
}

async function committedPosition(client: LedgerClient, settings: WorkloadSettings, group: string, queueId: number): Promise<number | null> {
  try {
    const reply = await client.call({ op: 'queryOffsets', group, queues: [{ topic: settings.topic, queueId }] }, settings.opTimeoutMs);
    const range = reply.offsets[0];
    assert(range !== undefined, 'queryOffsets answers for the queue asked');
    return range.offset ?? range.minOffset;
  } catch {
    return null;
  }
}

/** One pull's messages, with the queue's first stored offset and where the read started. */
interface PulledBatch {
  readonly messages: ReadMessage[];
  readonly minOffset: number;
  /** The offset asked for, or minOffset when retention had deleted it. */
  readonly startOffset: number;
  /** Where the next pull starts: past what this one returned and what its filter skipped. */
  readonly nextBeginOffset: number;
}

/** The filter a consumer of queueId subscribes with: SQL92 on odd queues when the workload has one, else tags. */
function subscription(settings: WorkloadSettings, queueId: number, filterTags: readonly string[]): SubscriptionFilter {
  if (settings.filterSql !== '' && queueId % 2 === 1) return { type: 'sql', expression: settings.plantedUnfilteredPulls ? 'TRUE' : settings.filterSql };
  return { type: 'tag', expression: settings.plantedUnfilteredPulls ? '*' : filterTags.join(' || ') };
}

/** `filterTags`: the consumers' tag filter ([] or absent: every message, as drains read). */
async function pull(client: LedgerClient, settings: WorkloadSettings, queueId: number, offset: number, waitMs: number, filterTags: readonly string[] = []): Promise<PulledBatch> {
  const reply = await client.call(
    {
      op: 'pull', topic: settings.topic, queueId, offset, maxMessages: settings.pullMessagesMax, maxBytes: 1 << 20, waitMs,
      ...(filterTags.length > 0 ? { filter: subscription(settings, queueId, filterTags) } : {}),
    },
    settings.opTimeoutMs + waitMs,
  );
  const messages = reply.messages.map((m): ReadMessage => {
    const body = Buffer.from(m.body).toString('utf8');
    return settings.delayMaxMs > 0 ? { offset: m.offset, body, storeTimestampMs: m.storeTimestampMs } : { offset: m.offset, body };
  });
  return { messages, minOffset: reply.minOffset, startOffset: reply.startOffset, nextBeginOffset: reply.nextBeginOffset };
}

/**
 * Reads one whole queue from its first offset as one `drain` operation. Retries as a new
 * process after an uncertain attempt; returns whether an ok drain was recorded.
 */
export async function drainQueue(context: Omit<WorkloadContext, 'stopped'>, queueId: number): Promise<boolean> {
  const { settings, recorder } = context;
  const client = context.newClient();
  const queue = queueName(settings.topic, queueId);
  for (let attempt = 0; attempt < settings.drainAttemptsMax; attempt++) {
    const process = recorder.newProcess(`drain ${queueId}`);
    recorder.invokeRead(process, 'drain', queue);
    try {
      const { messages, minOffset } = await readWholeQueue(client, settings, queueId);
      recorder.readOk(process, 'drain', queue, messages, minOffset);
      return true;
    } catch (error) {
      recorder.readFailed(failedOutcome(error), process, 'drain', queue, describeError(error));
      await sleep(200);
    }
  }
  return false;
}

/** The whole queue from its first stored offset; `minOffset` is where the read began. */
async function readWholeQueue(client: LedgerClient, settings: WorkloadSettings, queueId: number): Promise<{ messages: ReadMessage[]; minOffset: number }> {
  const reply = await client.call({ op: 'queryOffsets', group: 'chaos-drain', queues: [{ topic: settings.topic, queueId }] }, settings.opTimeoutMs);
  const range = reply.offsets[0];
  assert(range !== undefined, 'queryOffsets answers for the queue asked');
  const messages: ReadMessage[] = [];
  let minOffset: number | undefined;
  let position = range.minOffset;
  for (;;) {
    const batch = await pull(client, settings, queueId, position, 0);
    // Retention may move the start before the first read (the drain then starts there), but a
    // later batch that starts past its position would leave a hole the checker reads as loss.
    if (minOffset === undefined) minOffset = position = batch.startOffset;
    else if (batch.startOffset !== position) throw new Error(`retention deleted offsets ${position}..${batch.startOffset - 1} while the drain read them`);
    const last = batch.messages[batch.messages.length - 1];
    if (last === undefined) break;
    messages.push(...batch.messages);
    position = last.offset + 1;
  }
  // Ending short of the end the broker just named (e.g. the reads went to a lagging new
  // leader) would make a partial drain look like loss: count it as an uncertain attempt.
  if (position < range.nextOffset) throw new Error(`the drain ended at offset ${position}, before the queue's end ${range.nextOffset}`);
  return { messages, minOffset };
}
