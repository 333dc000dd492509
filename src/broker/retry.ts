// The leader's side of delays, retries and dead letters: it resolves what a request leaves to
// the cluster's config (a delay level, the retry back-off, maxReconsumeTimes) into absolute
// values in the command, so applying it needs no config and stays deterministic
// (state-machine.ts applies the commands; commands.ts checks their shape).
//
// Retry (RocketMQ's consumerSendMsgBack): the failed delivery's reconsumeTimes comes from the
// *stored* message, never from the client; n = reconsumeTimes + 1. Past maxReconsumeTimes the
// message becomes a dead letter in %DLQ%<group> at once, with attempts = n; else a retry copy
// goes to %RETRY%<group>, due after delay level min(n + 2, levels) (RocketMQ: retry n waits
// level n + 2) with reconsumeTimes n. Both keep the original msgId, body, tag, keys and
// properties, the first delivery's origin and the first failure's time. An orderly consumer
// retries in place, so it names its own count (orderlyAttempts) and dead-letters at once.
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { LIMITS, type ProduceMessageWire } from '../protocol/index.js';
import { type BrokerCommand, dlqTopicOf, type ProduceMessage, retryTopicOf } from './commands.js';
import type { StoredMessage } from './reads.js';

export interface RetrySettings {
  /** delay.levels in ms, level N at [N - 1]. */
  readonly delayLevelsMs: readonly number[];
  /** consumer.maxReconsumeTimes: what a sendBack without its own uses. */
  readonly maxReconsumeTimes: number;
}

/** The reason a dead letter carries when the consumer gave none. */
const DEFAULT_REASON = 'consumer returned RECONSUME_LATER';

/**
 * A produce message's due time, resolved against the leader's clock (timestampMs, the
 * command's): deliverAtMs as given, or timestampMs + delay level N. Throws LMQ_BAD_INPUT for a
 * level the cluster lacks or a time more than maxDelayMs ahead. undefined: not delayed.
 */
export function resolveDeliverAtMs(message: ProduceMessageWire, timestampMs: number, settings: RetrySettings): number | undefined {
  let deliverAtMs = message.deliverAtMs;
  if (message.delayLevel !== undefined) {
    const levelMs = settings.delayLevelsMs[message.delayLevel - 1];
    if (levelMs === undefined) {
      throw new LmqError('LMQ_BAD_INPUT', `delay level ${message.delayLevel} does not exist: the cluster has ${settings.delayLevelsMs.length} (delay.levels), numbered from 1`);
    }
    deliverAtMs = timestampMs + levelMs;
  }
  if (deliverAtMs !== undefined && deliverAtMs - timestampMs > LIMITS.maxDelayMs) {
    throw new LmqError('LMQ_BAD_INPUT', `message ${message.msgId} is due at ${new Date(deliverAtMs).toISOString()}, more than 40 days (maxDelayMs ${LIMITS.maxDelayMs}) from now`);
  }
  return deliverAtMs;
}

/** Which delay level retry n waits: n + 2, or the last level past the end. */
export function retryLevel(reconsumeTimes: number, levels: number): number {
  assert(reconsumeTimes >= 1 && levels >= 1, 'a retry is the first or a later one, with levels');
  return Math.min(reconsumeTimes + 2, levels);
}

/** Throws LMQ_BAD_INPUT when the group's system topic names would be longer than a name may be. */
export function checkRetryGroup(group: string): void {
  const longest = dlqTopicOf(group).length > retryTopicOf(group).length ? dlqTopicOf(group) : retryTopicOf(group);
  if (longest.length > LIMITS.maxNameLength) {
    throw new LmqError('LMQ_BAD_INPUT', `group "${group.slice(0, 40)}…" is too long for retry: its topic ${longest.slice(0, 20)}… would be longer than ${LIMITS.maxNameLength} characters`);
  }
}

export interface SendBackRequest {
  readonly group: string;
  readonly reason?: string;
  readonly maxReconsumeTimes?: number;
  /** An orderly consumer's count of the deliveries that failed: dead-letter at once with it. */
  readonly orderlyAttempts?: number;
}

/** The sendBack command for a failed delivery of `stored` (read at the leader), at nowMs. */
export function sendBackCommand(stored: StoredMessage, request: SendBackRequest, settings: RetrySettings, nowMs: number): BrokerCommand {
  const n = (stored.reconsumeTimes ?? 0) + 1;
  const max = request.maxReconsumeTimes ?? settings.maxReconsumeTimes;
  const origin = stored.origin ?? { msgId: stored.msgId, topic: stored.topic, queueId: stored.queueId, offset: stored.offset };
  const firstFailureMs = stored.firstFailureMs ?? nowMs;
  const from = { topic: stored.topic, queueId: stored.queueId, offset: stored.offset };
  const common = { timestampMs: nowMs, group: request.group, from };
  if (n > max || request.orderlyAttempts !== undefined) {
    const message = deadLetterCopy(stored, request.group, request.reason ?? DEFAULT_REASON, request.orderlyAttempts ?? n, nowMs);
    return { kind: 'sendBack', ...common, target: 'dlq', message };
  }
  const levelMs = settings.delayLevelsMs[retryLevel(n, settings.delayLevelsMs.length) - 1];
  assert(levelMs !== undefined, 'the retry level exists');
  const message = { ...userFields(stored), topic: retryTopicOf(request.group), queueId: 0, deliverAtMs: nowMs + levelMs, reconsumeTimes: n, origin, firstFailureMs };
  return { kind: 'sendBack', ...common, target: 'retry', message };
}

/**
 * The dead-letter copy of `stored` for `%DLQ%<group>` after `attempts` failed deliveries, the
 * last at nowMs: the original's user fields, its first delivery's origin and first failure.
 * A sendBack past maxReconsumeTimes and a simple consumer's last expired delivery make it.
 */
export function deadLetterCopy(stored: StoredMessage, group: string, reason: string, attempts: number, nowMs: number): ProduceMessage {
  const origin = stored.origin ?? { msgId: stored.msgId, topic: stored.topic, queueId: stored.queueId, offset: stored.offset };
  const firstFailureMs = stored.firstFailureMs ?? nowMs;
  const deadLetter = { reason, attempts, firstFailureMs, lastFailureMs: nowMs };
  return { ...userFields(stored), topic: dlqTopicOf(group), queueId: 0, origin, firstFailureMs, deadLetter };
}

/** The dlqResend command for dead letters not yet resent (read at the leader). */
export function dlqResendCommand(group: string, deadLetters: readonly StoredMessage[], nowMs: number): BrokerCommand {
  assert(deadLetters.length >= 1, 'a resend carries dead letters');
  const entries = deadLetters.map((stored) => {
    assert(stored.origin !== undefined && stored.deadLetter !== undefined, 'a resent message is a dead letter');
    // Due at once, as a first delivery again: reconsumeTimes 0 (absent), the origin kept.
    const message: ProduceMessage = { ...userFields(stored), topic: retryTopicOf(group), queueId: 0, origin: stored.origin };
    return { dlqOffset: stored.offset, message };
  });
  return { kind: 'dlqResend', timestampMs: nowMs, group, entries };
}

/** What a copy keeps of the message it copies. */
function userFields(stored: StoredMessage): Pick<ProduceMessage, 'msgId' | 'body' | 'tag' | 'keys' | 'properties'> {
  return {
    msgId: stored.msgId,
    body: stored.body,
    ...(stored.tag === undefined ? {} : { tag: stored.tag }),
    ...(stored.keys === undefined ? {} : { keys: stored.keys }),
    ...(stored.properties === undefined ? {} : { properties: stored.properties }),
  };
}
