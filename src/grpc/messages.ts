// Messages between RocketMQ 5's shape (apache.rocketmq.v2.Message, as @grpc/proto-loader gives
// it) and ledgermq's. What RocketMQ carries and ledgermq's message has no field for — born time
// and host, message group, message type — travels as properties under SYSTEM_PREFIX, which a
// consumer sees back as the system properties it sent and never as user properties; a client
// may not send user properties with that prefix. The message id is the client's own (ledgermq
// stores any id), so a receive answers the id the producer's send receipt named.
import { createHash } from 'node:crypto';
import { LIMITS, type ProduceMessageWire, type ReceivedMessage, type StoredMessage } from '../protocol/index.js';
import { Code, GrpcRequestError } from './codes.js';

/** Properties ledgermq stores for RocketMQ's system properties (":" is in no user property RocketMQ allows either). */
export const SYSTEM_PREFIX = 'rmq:';
const BORN_MS = `${SYSTEM_PREFIX}bornMs`;
const BORN_HOST = `${SYSTEM_PREFIX}bornHost`;
const MESSAGE_GROUP = `${SYSTEM_PREFIX}group`;
const MESSAGE_TYPE = `${SYSTEM_PREFIX}type`;

export type MessageType = 'NORMAL' | 'FIFO' | 'DELAY' | 'TRANSACTION';
const MESSAGE_TYPES: ReadonlySet<string> = new Set(['NORMAL', 'FIFO', 'DELAY', 'TRANSACTION']);

export interface Timestamp {
  readonly seconds: number;
  readonly nanos: number;
}
export type Duration = Timestamp;

export interface Resource {
  readonly name: string;
  readonly resourceNamespace?: string;
}

/** The fields of apache.rocketmq.v2.Message a server reads on a send. */
export interface RmqMessage {
  readonly topic: Resource | null;
  readonly userProperties: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  readonly systemProperties: {
    readonly tag?: string;
    readonly keys: readonly string[];
    readonly messageId: string;
    readonly bodyEncoding: string;
    readonly messageType: string;
    readonly bornTimestamp: Timestamp | null;
    readonly bornHost: string;
    readonly deliveryTimestamp?: Timestamp | null;
    readonly messageGroup?: string;
  } | null;
}

export function millisOf(time: Timestamp | null | undefined): number | undefined {
  if (time === null || time === undefined) return undefined;
  return Number(time.seconds) * 1000 + Math.floor(time.nanos / 1e6);
}

export function timestampOf(ms: number): Timestamp {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

/** A message to send, and what RocketMQ said about it that the send itself needs. */
export interface Outgoing {
  readonly message: ProduceMessageWire;
  readonly type: MessageType;
  readonly messageGroup: string | undefined;
}

/** A RocketMQ message to send as ledgermq's; GrpcRequestError (with RocketMQ's code) when it cannot be one. */
export function outgoingOf(rmq: RmqMessage): Outgoing {
  const system = rmq.systemProperties;
  const topic = rmq.topic?.name ?? '';
  if (system === null) throw new GrpcRequestError(Code.BAD_REQUEST, 'the message has no system_properties');
  if (topic === '') throw new GrpcRequestError(Code.ILLEGAL_TOPIC, 'the message names no topic');
  if (system.messageId === '' || system.messageId.length > LIMITS.maxIdLength) throw new GrpcRequestError(Code.ILLEGAL_MESSAGE_ID, `message_id must be 1 to ${LIMITS.maxIdLength} characters`);
  if (system.bodyEncoding === 'GZIP') throw new GrpcRequestError(Code.UNSUPPORTED, 'body_encoding GZIP is not supported on send; send IDENTITY');
  const type = MESSAGE_TYPES.has(system.messageType) ? (system.messageType as MessageType) : 'NORMAL';
  const properties: Record<string, string> = {};
  for (const [name, value] of Object.entries(rmq.userProperties)) {
    if (name.startsWith(SYSTEM_PREFIX)) throw new GrpcRequestError(Code.ILLEGAL_MESSAGE_PROPERTY_KEY, `user property ${name}: the prefix "${SYSTEM_PREFIX}" is the broker's`);
    properties[name] = value;
  }
  const bornMs = millisOf(system.bornTimestamp);
  if (bornMs !== undefined) properties[BORN_MS] = String(bornMs);
  if (system.bornHost !== '') properties[BORN_HOST] = system.bornHost;
  const messageGroup = system.messageGroup === undefined || system.messageGroup === '' ? undefined : system.messageGroup;
  if (messageGroup !== undefined) properties[MESSAGE_GROUP] = messageGroup;
  properties[MESSAGE_TYPE] = type;
  const deliverAtMs = millisOf(system.deliveryTimestamp);
  const message: ProduceMessageWire = {
    msgId: system.messageId,
    topic,
    queueId: 0, // the gateway places it (sendMessage)
    body: rmq.body,
    ...(system.tag === undefined || system.tag === '' ? {} : { tag: system.tag }),
    ...(system.keys.length === 0 ? {} : { keys: [...system.keys] }),
    properties,
    ...(deliverAtMs === undefined ? {} : { deliverAtMs }),
  };
  return { message, type, messageGroup };
}

/** The delivery fields a receive adds to a stored message. */
export interface Delivery {
  readonly receipt: string;
  readonly deliveryAttempt: number;
  readonly invisibleUntilMs: number;
}

/**
 * A stored message as RocketMQ's Message: under the topic the consumer subscribed to (a retry
 * copy's too), with its body digest (MD5, which the client checks), and, when it was received,
 * its receipt handle and delivery attempt.
 */
export function rmqMessageOf(stored: StoredMessage, topic: string, namespace: string, storeHost: string, delivery?: Delivery): Record<string, unknown> {
  const user: Record<string, string> = {};
  for (const [name, value] of Object.entries(stored.properties ?? {})) if (!name.startsWith(SYSTEM_PREFIX)) user[name] = value;
  const props = stored.properties ?? {};
  const bornMs = props[BORN_MS] === undefined ? stored.storeTimestampMs : Number(props[BORN_MS]);
  const type = props[MESSAGE_TYPE] ?? (stored.deliverAtMs === undefined ? 'NORMAL' : 'DELAY');
  const system: Record<string, unknown> = {
    keys: stored.keys ?? [],
    messageId: stored.msgId,
    bodyDigest: { type: 'MD5', checksum: createHash('md5').update(stored.body).digest('hex').toUpperCase() },
    bodyEncoding: 'IDENTITY',
    messageType: MESSAGE_TYPES.has(type) ? type : 'NORMAL',
    bornTimestamp: timestampOf(bornMs),
    bornHost: props[BORN_HOST] ?? '',
    storeTimestamp: timestampOf(stored.storeTimestampMs),
    storeHost: storeHost,
    queueId: stored.queueId,
    queueOffset: stored.offset,
  };
  if (stored.tag !== undefined) system['tag'] = stored.tag;
  if (props[MESSAGE_GROUP] !== undefined) system['messageGroup'] = props[MESSAGE_GROUP];
  if (stored.deliverAtMs !== undefined) system['deliveryTimestamp'] = timestampOf(stored.deliverAtMs);
  if (delivery !== undefined) {
    system['receiptHandle'] = delivery.receipt;
    system['deliveryAttempt'] = delivery.deliveryAttempt;
    system['invisibleDuration'] = durationOf(Math.max(0, delivery.invisibleUntilMs - Date.now()));
  }
  return { topic: { name: topic, resourceNamespace: namespace }, userProperties: user, systemProperties: system, body: stored.body };
}

export function durationOf(ms: number): Duration {
  return timestampOf(ms);
}

/** A received message as RocketMQ's, under the subscribed topic. */
export function rmqReceivedOf(received: ReceivedMessage, topic: string, namespace: string, storeHost: string): Record<string, unknown> {
  return rmqMessageOf(received, topic, namespace, storeHost, received);
}
