// apache.rocketmq.v2.MessagingService over a ledgermq cluster: each RPC becomes the native
// client's operations (src/client), so a node forwards to the leader what must go through the
// log, and every answer carries a RocketMQ status — OK (20000), or the code codes.ts maps the
// failure to; an RPC never fails with a bare gRPC error and never waits past its deadline.
//
// Sending: each message is its own produce with producerId = its RocketMQ message id and seq 1,
// so the broker's producer dedup drops a retry of it — on any node, after a leader change —
// and answers the first placement (within the broker's window of recent producers,
// maxProducers). NORMAL/DELAY messages go to the topic's queues round-robin; a FIFO message to
// queue hash(message group) % queues, so one group keeps one queue's order; a TRANSACTION
// message is a half message of transaction id = its message id, in producer group = its topic.
// Consuming: the simple consumer's receive/ack/changeInvisibleDuration (replicated: a receipt
// from one leader acks on the next); tag and SQL filters are applied here, and a message the
// group's filter does not match is acked for the group at once, as RocketMQ treats it.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { LedgerClient } from '../client/client.js';
import { hashKey } from '../client/producer.js';
import { compileFilter, type MessageFilter } from '../filter/index.js';
import { LIMITS, parseReceipt, type ReceivedMessage } from '../protocol/index.js';
import { isLmqError } from '../util/errors.js';
import { Code, GrpcRequestError, OK_STATUS, type Status, statusOfError } from './codes.js';
import { millisOf, outgoingOf, type Resource, type RmqMessage, rmqReceivedOf, type Duration } from './messages.js';
import type { RouteTable } from './routes.js';
import type { TelemetrySessions } from './telemetry.js';

export interface GatewayOptions {
  /** This node: the store_host of the messages it hands out. */
  readonly selfId: string;
  /** One cluster call from a unary RPC gives up after this (below the clients' 3 s requestTimeout). */
  readonly unaryTimeoutMs: number;
  /** grpc.fifoGroups: groups whose receives are FIFO receives. */
  readonly fifoGroups: ReadonlySet<string>;
}

/** A receive answers this long before the client's deadline (requestTimeout + long polling). */
const RECEIVE_MARGIN_MS = 1_500;
/** Invisible duration of a push consumer's messages (auto_renew): its listener's time to ack. */
const AUTO_RENEW_INVISIBLE_MS = 60_000;
/**
 * A long poll is a loop of native receives of at most this wait: the broker's wait wakes on new
 * messages but not on another client's changeInvisibleDuration (a push consumer's nack), so
 * without the slice a nacked message would wait out the whole long poll (20 s) to come back.
 */
const RECEIVE_SLICE_MS = 1_000;
/** How long a topic's queue count is taken as known. */
const ROUTE_CACHE_MS = 3_000;

/** What carries one caller's calls to the cluster: the endpoint's own client, or (with an ACL) the signing user's (auth.ts). */
export interface Caller {
  readonly client: LedgerClient;
}

/** The caller of a call with these headers from this peer; throws GrpcRequestError (40100) when it cannot be proven. */
export type CallerOf = (metadata: grpc.Metadata, peer: string) => Caller;

type Unary = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

export class MessagingGateway {
  private readonly queueCounts = new Map<string, { queues: number; atMs: number }>();
  private nextQueue = 0;

  constructor(
    private readonly callerOf: CallerOf,
    private readonly routes: RouteTable,
    private readonly telemetry: TelemetrySessions,
    private readonly options: GatewayOptions,
    private readonly logger: Logger,
  ) {}

  /** The handlers grpc.Server.addService takes. */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      QueryRoute: this.unary((r, m, c) => this.queryRoute(r, m, c)),
      Heartbeat: this.unary(async () => ({ status: OK_STATUS })),
      QueryAssignment: this.unary(async (r, m, c) => this.queryAssignment(r, m, c)),
      SendMessage: this.unary((r, _m, c) => this.sendMessage(r, c)),
      AckMessage: this.unary((r, _m, c) => this.ackMessage(r, c)),
      ChangeInvisibleDuration: this.unary((r, _m, c) => this.changeInvisibleDuration(r, c)),
      ForwardMessageToDeadLetterQueue: this.unary((r, _m, c) => this.forwardToDeadLetterQueue(r, c)),
      EndTransaction: this.unary((r, _m, c) => this.endTransaction(r, c)),
      NotifyClientTermination: this.unary(async (_r, m) => {
        this.telemetry.terminate(clientIdOf(m));
        return { status: OK_STATUS };
      }),
      ReceiveMessage: (call: grpc.ServerWritableStream<Record<string, unknown>, unknown>) => void this.receiveMessage(call),
      Telemetry: (call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>) => {
        let caller: Caller;
        try {
          refuseNamespace(call.metadata);
          caller = this.callerOf(call.metadata, call.getPeer());
        } catch (error) {
          const { message } = statusOfError(error);
          call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: message });
          return;
        }
        this.telemetry.serve(call, clientIdOf(call.metadata), caller.client);
      },
      PullMessage: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        call.write({ status: notImplemented('PullMessage') });
        call.end();
      },
      UpdateOffset: this.unary(async () => ({ status: notImplemented('UpdateOffset') })),
      GetOffset: this.unary(async () => ({ status: notImplemented('GetOffset') })),
      QueryOffset: this.unary(async () => ({ status: notImplemented('QueryOffset') })),
      RecallMessage: this.unary(async () => ({ status: notImplemented('RecallMessage') })),
      SyncLiteSubscription: this.unary(async () => ({ status: notImplemented('SyncLiteSubscription') })),
    };
  }

  /** A unary handler: any failure answers its status in the response, never a gRPC error. */
  private unary(handle: (request: Record<string, unknown>, metadata: grpc.Metadata, caller: Caller) => Promise<Record<string, unknown>>): Unary {
    return (call, callback) => {
      const run = async () => {
        refuseNamespace(call.metadata);
        return handle(call.request, call.metadata, this.callerOf(call.metadata, call.getPeer()));
      };
      run().then(
        (response) => callback(null, response),
        (error: unknown) => {
          this.logger.debug({ err: error, rpc: call.getPath() }, 'gRPC request failed');
          callback(null, { status: statusOfError(error) });
        },
      );
    };
  }

  private async queryRoute(request: Record<string, unknown>, metadata: grpc.Metadata, caller: Caller): Promise<Record<string, unknown>> {
    const topic = nameOf(request['topic'], 'topic');
    await this.queueCount(topic, caller);
    return { status: OK_STATUS, messageQueues: this.routes.queues(topic, namespaceOf(metadata)) };
  }

  private async queryAssignment(request: Record<string, unknown>, metadata: grpc.Metadata, caller: Caller): Promise<Record<string, unknown>> {
    const topic = nameOf(request['topic'], 'topic');
    await this.queueCount(topic, caller);
    return { status: OK_STATUS, assignments: this.routes.queues(topic, namespaceOf(metadata)).map((messageQueue) => ({ messageQueue })) };
  }

  private async queueCount(topic: string, caller: Caller): Promise<number> {
    const known = this.queueCounts.get(topic);
    if (known !== undefined && performance.now() - known.atMs < ROUTE_CACHE_MS) return known.queues;
    const { queues } = await caller.client.call({ op: 'route', topic }, this.options.unaryTimeoutMs);
    this.queueCounts.set(topic, { queues, atMs: performance.now() });
    return queues;
  }

  private async sendMessage(request: Record<string, unknown>, caller: Caller): Promise<Record<string, unknown>> {
    const messages = request['messages'] as RmqMessage[];
    if (messages.length === 0) throw new GrpcRequestError(Code.BAD_REQUEST, 'SendMessage names no message');
    const entries = await Promise.all(messages.map((m) => this.sendOne(m, caller).catch((error: unknown) => ({ status: statusOfError(error), messageId: m.systemProperties?.messageId ?? '', transactionId: '', offset: 0 }))));
    const failed = entries.find((e) => e.status.code !== Code.OK);
    return { status: failed?.status ?? OK_STATUS, entries };
  }

  private async sendOne(rmq: RmqMessage, caller: Caller): Promise<{ status: Status; messageId: string; transactionId: string; offset: number }> {
    const { message, type, messageGroup } = outgoingOf(rmq);
    const queues = await this.queueCount(message.topic, caller);
    const queueId = messageGroup !== undefined ? hashKey(messageGroup) % queues : this.nextQueue++ % queues;
    const placed = Object.assign({}, message, { queueId }); // V8's object spread is ~20× slower per message
    if (type === 'TRANSACTION') {
      await caller.client.call({ op: 'txHalf', producerGroup: message.topic, producerId: message.msgId, txId: message.msgId, messages: [placed] }, this.options.unaryTimeoutMs);
      return { status: OK_STATUS, messageId: message.msgId, transactionId: message.msgId, offset: 0 };
    }
    if (message.deliverAtMs !== undefined && message.deliverAtMs - Date.now() > LIMITS.maxDelayMs) {
      throw new GrpcRequestError(Code.ILLEGAL_DELIVERY_TIME, `delivery_timestamp is more than ${LIMITS.maxDelayMs} ms ahead`);
    }
    const response = await caller.client.call({ op: 'produce', producerId: message.msgId, seq: 1, messages: [placed] }, this.options.unaryTimeoutMs);
    return { status: OK_STATUS, messageId: message.msgId, transactionId: '', offset: response.offsets[0] ?? 0 };
  }

  private async receiveMessage(call: grpc.ServerWritableStream<Record<string, unknown>, unknown>): Promise<void> {
    const startedMs = performance.now();
    try {
      refuseNamespace(call.metadata);
      const caller = this.callerOf(call.metadata, call.getPeer());
      const request = call.request;
      const group = nameOf(request['group'], 'group');
      const queue = request['messageQueue'] as { topic: Resource | null } | null;
      const topic = nameOf(queue?.topic ?? null, 'message_queue.topic');
      const filter = filterOf(request['filterExpression'] as { type: string; expression: string } | null);
      const max = Math.min(Math.max(Number(request['batchSize']) || 1, 1), LIMITS.maxReceiveMessages);
      const invisibleDurationMs = request['autoRenew'] === true ? AUTO_RENEW_INVISIBLE_MS : invisibleMsOf(request['invisibleDuration'] as Duration | null);
      const deadline = call.getDeadline();
      const untilMs = deadline instanceof Date ? deadline.getTime() - Date.now() - RECEIVE_MARGIN_MS : Infinity;
      const pollMs = Math.max(0, Math.min(millisOf(request['longPollingTimeout'] as Duration | null) ?? 0, untilMs));
      const messages = await this.receiveMatching(caller, group, topic, clientIdOf(call.metadata), max, invisibleDurationMs, filter, startedMs + pollMs);
      const namespace = namespaceOf(call.metadata);
      for (const message of messages) call.write({ message: rmqReceivedOf(message, topic, namespace, this.options.selfId) });
      call.write({ status: messages.length > 0 ? OK_STATUS : { code: Code.MESSAGE_NOT_FOUND, message: 'no new message' } });
    } catch (error) {
      this.logger.debug({ err: error }, 'gRPC receive failed');
      call.write({ status: statusOfError(error) });
    }
    call.end();
  }

  /** Receives until some message matches the filter or the long poll ends; those that do not match are acked for the group. */
  private async receiveMatching(caller: Caller, group: string, topic: string, clientId: string, max: number, invisibleDurationMs: number, filter: MessageFilter | null, untilMs: number): Promise<ReceivedMessage[]> {
    for (;;) {
      const waitMs = Math.max(0, Math.min(RECEIVE_SLICE_MS, Math.floor(untilMs - performance.now())));
      const callMs = waitMs + this.options.unaryTimeoutMs;
      const fifo = this.options.fifoGroups.has(group) ? { fifo: true } : {};
      const { messages } = await caller.client.call({ op: 'receive', group, topic, clientId, max, invisibleDurationMs, waitMs, ...fifo }, callMs, callMs);
      const matching = filter === null ? messages : messages.filter((m) => filter.matches(m));
      const skipped = messages.filter((m) => !matching.includes(m)).map((m) => m.receipt);
      if (skipped.length > 0) await caller.client.call({ op: 'ack', group, receipts: skipped }, this.options.unaryTimeoutMs);
      if (matching.length > 0 || performance.now() >= untilMs) return [...matching];
    }
  }

  private async ackMessage(request: Record<string, unknown>, caller: Caller): Promise<Record<string, unknown>> {
    const group = nameOf(request['group'], 'group');
    const entries = request['entries'] as { messageId: string; receiptHandle: string }[];
    if (entries.length === 0) throw new GrpcRequestError(Code.BAD_REQUEST, 'AckMessage names no entry');
    if (entries.length > LIMITS.maxReceiptsPerAck) throw new GrpcRequestError(Code.BAD_REQUEST, `more than ${LIMITS.maxReceiptsPerAck} entries`);
    const valid = entries.filter((e) => parseReceipt(e.receiptHandle) !== undefined);
    const { expired } = valid.length === 0 ? { expired: [] as string[] } : await caller.client.call({ op: 'ack', group, receipts: valid.map((e) => e.receiptHandle) }, this.options.unaryTimeoutMs);
    const stale = new Set(expired);
    const results = entries.map((e) => {
      const bad = parseReceipt(e.receiptHandle) === undefined || stale.has(e.receiptHandle);
      const status = bad ? { code: Code.INVALID_RECEIPT_HANDLE, message: 'the receipt handle is not a current delivery (expired and delivered again, or not one this cluster handed out)' } : OK_STATUS;
      return { messageId: e.messageId, receiptHandle: e.receiptHandle, status };
    });
    return { status: results.find((r) => r.status.code !== Code.OK)?.status ?? OK_STATUS, entries: results };
  }

  private async changeInvisibleDuration(request: Record<string, unknown>, caller: Caller): Promise<Record<string, unknown>> {
    const group = nameOf(request['group'], 'group');
    const receipt = receiptOf(request['receiptHandle']);
    const invisibleDurationMs = invisibleMsOf(request['invisibleDuration'] as Duration | null);
    const response = await caller.client.call({ op: 'changeInvisibleDuration', group, receipt, invisibleDurationMs }, this.options.unaryTimeoutMs);
    return { status: OK_STATUS, receiptHandle: response.receipt };
  }

  /** The delivery goes to %DLQ%<group> at once (with its attempts), and its receipt is acked so it is not delivered again. */
  private async forwardToDeadLetterQueue(request: Record<string, unknown>, caller: Caller): Promise<Record<string, unknown>> {
    const group = nameOf(request['group'], 'group');
    const receipt = receiptOf(request['receiptHandle']);
    const at = parseReceipt(receipt)!;
    const attempts = Math.min(Math.max(Number(request['deliveryAttempt']) || 1, 1), LIMITS.maxReconsumeTimes + 1);
    const msgId = String(request['messageId'] ?? '');
    if (msgId === '') throw new GrpcRequestError(Code.ILLEGAL_MESSAGE_ID, 'message_id is required');
    await caller.client.call({ op: 'sendBack', group, topic: at.topic, queueId: at.queueId, offset: at.offset, msgId, orderlyAttempts: attempts, reason: 'forwarded to the dead-letter queue by the RocketMQ client' }, this.options.unaryTimeoutMs);
    await caller.client.call({ op: 'ack', group, receipts: [receipt] }, this.options.unaryTimeoutMs);
    return { status: OK_STATUS };
  }

  private async endTransaction(request: Record<string, unknown>, caller: Caller): Promise<Record<string, unknown>> {
    const topic = nameOf(request['topic'], 'topic');
    const txId = String(request['transactionId'] ?? '');
    if (txId === '') throw new GrpcRequestError(Code.INVALID_TRANSACTION_ID, 'transaction_id is required');
    const resolution = request['resolution'];
    if (resolution !== 'COMMIT' && resolution !== 'ROLLBACK') throw new GrpcRequestError(Code.BAD_REQUEST, 'resolution must be COMMIT or ROLLBACK');
    const source = request['source'] === 'SOURCE_SERVER_CHECK' ? 'check' : 'producer';
    try {
      await caller.client.call({ op: 'txEnd', producerGroup: topic, txId, outcome: resolution === 'COMMIT' ? 'commit' : 'rollback', source }, this.options.unaryTimeoutMs);
    } catch (error) {
      if (isLmqError(error, 'LMQ_BAD_INPUT')) throw new GrpcRequestError(Code.INVALID_TRANSACTION_ID, error.message);
      throw error;
    }
    return { status: OK_STATUS };
  }
}

function notImplemented(rpc: string): Status {
  return { code: Code.NOT_IMPLEMENTED, message: `${rpc} is not implemented by ledgermq` };
}

function nameOf(resource: unknown, field: string): string {
  const name = (resource as Resource | null)?.name ?? '';
  if (name === '') throw new GrpcRequestError(field === 'group' ? Code.ILLEGAL_CONSUMER_GROUP : Code.ILLEGAL_TOPIC, `${field} is required`);
  return name;
}

function receiptOf(value: unknown): string {
  const receipt = String(value ?? '');
  if (parseReceipt(receipt) === undefined) throw new GrpcRequestError(Code.INVALID_RECEIPT_HANDLE, 'receipt_handle is not one this cluster handed out');
  return receipt;
}

function invisibleMsOf(duration: Duration | null): number {
  const ms = millisOf(duration);
  if (ms === undefined) throw new GrpcRequestError(Code.ILLEGAL_INVISIBLE_TIME, 'invisible_duration is required');
  if (ms > LIMITS.maxInvisibleDurationMs) throw new GrpcRequestError(Code.ILLEGAL_INVISIBLE_TIME, `invisible_duration is more than ${LIMITS.maxInvisibleDurationMs} ms`);
  // The push consumer's nack asks for its back-off, which 1.0.8 shrinks to milliseconds.
  return Math.max(ms, LIMITS.minInvisibleDurationMs);
}

function filterOf(expression: { type: string; expression: string } | null): MessageFilter | null {
  if (expression === null || expression.expression === '' || (expression.type !== 'SQL' && expression.expression.trim() === '*')) return null;
  try {
    return compileFilter({ type: expression.type === 'SQL' ? 'sql' : 'tag', expression: expression.expression });
  } catch (error) {
    throw new GrpcRequestError(Code.ILLEGAL_FILTER_EXPRESSION, error instanceof Error ? error.message : String(error));
  }
}

export function clientIdOf(metadata: grpc.Metadata): string {
  const [id] = metadata.get('x-mq-client-id');
  const text = typeof id === 'string' ? id : '';
  if (text === '' || text.length > LIMITS.maxIdLength) return 'rocketmq-client';
  return text;
}

function namespaceOf(metadata: grpc.Metadata): string {
  const [namespace] = metadata.get('x-mq-namespace');
  return typeof namespace === 'string' ? namespace : '';
}

/** ledgermq has one namespace: a client that asks for another would silently share topics, so it is refused. */
function refuseNamespace(metadata: grpc.Metadata): void {
  if (namespaceOf(metadata) !== '') throw new GrpcRequestError(Code.UNSUPPORTED, 'ledgermq has no namespaces; connect without one');
}
