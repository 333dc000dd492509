// The Settings a server answers on a client's Telemetry stream. Every client's startup() waits
// (without a timeout) for one, and the official Node.js client 1.0.8 fails on a reply without
// what it reads: a producer needs publishing.max_body_size (0 fails every send) and an
// exponential backoff_policy (absent: a TypeError, startup never ends); a push consumer reads
// subscription.receive_batch_size, long_polling_timeout and fifo. The reply echoes what the
// client declared (topics, subscriptions, timeouts) and adds the cluster's limits.
import { LIMITS } from '../protocol/index.js';
import { durationOf, type Duration } from './messages.js';

/** The request's Settings, as far as the reply needs them. */
export interface ClientSettings {
  readonly clientType: string;
  readonly accessPoint: unknown;
  readonly backoffPolicy: { readonly maxAttempts: number } | null;
  readonly requestTimeout: Duration | null;
  readonly pubSub?: 'publishing' | 'subscription';
  readonly publishing: { readonly topics: readonly { name: string }[] } | null;
  readonly subscription: { readonly group: { name: string } | null; readonly subscriptions: readonly unknown[]; readonly longPollingTimeout: Duration | null } | null;
  readonly userAgent: unknown;
}

export interface SettingsLimits {
  /** consumer.maxReconsumeTimes: a message is delivered at most this + 1 times, then dead-lettered. */
  readonly maxReconsumeTimes: number;
  /** grpc.fifoGroups: a push consumer of one consumes each queue in order, one message at a time. */
  readonly fifoGroups: ReadonlySet<string>;
}

/** A producer's send retries: the client waits these between attempts (it keeps whole seconds only, so 0 — at once). */
const PRODUCER_BACKOFF = Object.freeze({ initial: durationOf(10), max: durationOf(1000), multiplier: 2 });
/**
 * A push consumer's redelivery back-off after a failed listener. The 1.0.8 client reads these
 * durations' whole seconds as milliseconds; a nack's invisible duration is then raised to
 * ledgermq's minInvisibleDurationMs (1 s), which is the redelivery delay it gets.
 */
const CONSUMER_BACKOFF = Object.freeze({ initial: durationOf(1000), max: durationOf(10_000), multiplier: 2 });
const PRODUCER_MAX_ATTEMPTS = 3;
/**
 * A push consumer's long poll (it sends none of its own). Short, because its shutdown() waits
 * for every receive in flight, one per broker; an idle consumer polls again after it.
 */
const PUSH_LONG_POLLING_MS = 5_000;

export function settingsReply(request: ClientSettings, limits: SettingsLimits): Record<string, unknown> {
  const common = { clientType: request.clientType, accessPoint: request.accessPoint, requestTimeout: request.requestTimeout, userAgent: request.userAgent };
  if (request.clientType === 'PRODUCER' || request.pubSub === 'publishing') {
    return {
      ...common,
      backoffPolicy: { maxAttempts: request.backoffPolicy?.maxAttempts || PRODUCER_MAX_ATTEMPTS, exponentialBackoff: PRODUCER_BACKOFF },
      publishing: { topics: request.publishing?.topics ?? [], maxBodySize: LIMITS.maxProduceBodyBytes, validateMessageType: false },
    };
  }
  const subscription = request.subscription;
  return {
    ...common,
    backoffPolicy: { maxAttempts: limits.maxReconsumeTimes + 1, exponentialBackoff: CONSUMER_BACKOFF },
    subscription: {
      group: subscription?.group ?? null,
      subscriptions: subscription?.subscriptions ?? [],
      fifo: limits.fifoGroups.has(subscription?.group?.name ?? ''),
      receiveBatchSize: LIMITS.maxReceiveMessages,
      longPollingTimeout: subscription?.longPollingTimeout ?? durationOf(PUSH_LONG_POLLING_MS),
    },
  };
}
