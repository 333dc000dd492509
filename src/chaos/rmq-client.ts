// The chaos workload's RocketMQ 5 client (`chaos --client rocketmq`): raw @grpc/grpc-js calls
// of apache.rocketmq.v2.MessagingService on the nodes' gRPC endpoints, with the headers the
// official client sends on every call and a deadline on every call, so that each outcome is
// exact — which the official client's own retries and its untimed startup would blur:
//   ok      the endpoint answered status OK (a receive: OK or MESSAGE_NOT_FOUND, "none");
//   fail    it answered a code that proves the request did nothing (definiteFailure below);
//   info    anything else: a deadline, a dropped connection, a code of unknown outcome.
// Sends and acks retry within their budget (a send keeps its message id, which the broker
// deduplicates on any node, so a retry never stores it twice and answers the first offset);
// one of them fails only when every attempt failed definitely. After a transport failure the
// client drops its channel to that endpoint and dials the next node's, as a client whose
// broker died reconnects elsewhere. Nothing here knows the history; rmq-workload.ts records it.
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { timestampOf } from '../grpc/messages.js'; // a google.protobuf.Timestamp or Duration of ms
import { PROTO_ROOT } from '../grpc/proto.js';
import { assert } from '../util/assert.js';

/** What the official client 1.0.8 names itself in x-mq-client-version. */
const CLIENT_VERSION = '1.0.8';
/** The official client's default requestTimeout: each unary call's deadline. */
export const RMQ_REQUEST_TIMEOUT_MS = 3_000;
/** Pause before a retry of a send or ack, so a leaderless cluster is not asked in a tight loop. */
const RETRY_PAUSE_MS = 100;
/** A retry with less budget than this left could only time out: the call ends instead. */
const MIN_ATTEMPT_MS = 300;

/** RocketMQ status codes the client reads (apache.rocketmq.v2.Code). */
const OK = 20000;
const MESSAGE_NOT_FOUND = 40401;

/**
 * Codes that prove a request did nothing. The endpoint (src/grpc/codes.ts) answers these only
 * for its own request checks or for a refusal the cluster's client knew to be final — a
 * refusal after an attempt of unknown outcome comes back as LMQ_UNAVAILABLE, 50002, unknown:
 * every 400xx (a malformed request or field), 40100 / 40300 (authentication, ACL), 40402 (no
 * such topic), 41301 (body too large), 42900 (overloaded, refused before the log), 50001
 * (LMQ_OUT_OF_ORDER / LMQ_ROUTE_CHANGED: nothing stored), 50100 and 50500 (not supported).
 * Everything else — 40800, 50000 (internal, an error of unknown kind), 50002 (no leader in
 * time), 50400 (LMQ_TIMEOUT, LMQ_LEADERSHIP_LOST), codes this client does not know — is unknown.
 */
export function definiteFailure(code: number): boolean {
  if (code >= 40000 && code < 40100) return true;
  return [40100, 40300, 40402, 41301, 42900, 50001, 50100, 50500].includes(code);
}

/** A call that did not end OK; `outcome` says whether it certainly did nothing. */
export class RmqCallError extends Error {
  constructor(
    readonly outcome: 'fail' | 'info',
    message: string,
  ) {
    super(message);
    this.name = 'RmqCallError';
  }
}

/** apache.rocketmq.v2.Status as this client decodes it (enums as numbers). */
interface Status {
  readonly code: number;
  readonly message: string;
}

/** A message a receive handed out, with what an ack needs. */
export interface RmqReceived {
  readonly topic: string;
  readonly messageId: string;
  readonly receiptHandle: string;
  readonly queueId: number;
  readonly queueOffset: number;
  readonly deliveryAttempt: number;
  readonly body: Buffer;
}

/** The service definition loaded with numeric enums (the endpoint's loads names). */
let service: grpc.ServiceDefinition | undefined;
function messagingService(): grpc.ServiceDefinition {
  if (service !== undefined) return service;
  const options: protoLoader.Options = { keepCase: false, longs: Number, enums: Number, defaults: true, oneofs: true, includeDirs: [PROTO_ROOT] };
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync('apache/rocketmq/v2/service.proto', options)) as unknown as {
    apache: { rocketmq: { v2: { MessagingService: { service: grpc.ServiceDefinition } } } };
  };
  service = loaded.apache.rocketmq.v2.MessagingService.service;
  return service;
}

/** x-mq-date-time as the official client writes it: yyyyMMdd'T'HHmmss'Z' (UTC). */
function requestDateTime(now: Date): string {
  return `${now.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
}

/** A message id of the official client's shape: 34 hex characters, version 01 first. */
export function newMessageId(): string {
  return `01${randomBytes(16).toString('hex').toUpperCase()}`;
}

export interface RmqClientOptions {
  /** host:port of every node's gRPC endpoint, in the order they are tried. */
  readonly endpoints: readonly string[];
  /** Which endpoint is dialled first. */
  readonly firstEndpoint: number;
  /** x-mq-client-id: host@pid@n@time, as the official client makes it. */
  readonly clientId: string;
}

/** One RocketMQ client process: one channel at a time, to one node's endpoint. */
export class RmqClient {
  private index: number;
  private channel: grpc.Client | null = null;
  private closed = false;

  constructor(private readonly options: RmqClientOptions) {
    assert(options.endpoints.length > 0, 'the client needs an endpoint');
    assert(Number.isInteger(options.firstEndpoint) && options.firstEndpoint >= 0, 'firstEndpoint is an index');
    this.index = options.firstEndpoint % options.endpoints.length;
  }

  /** The endpoint the next call goes to. */
  get endpoint(): string {
    return this.options.endpoints[this.index]!;
  }

  /** Ends the channel; calls in flight end as transport failures. */
  close(): void {
    this.closed = true;
    this.channel?.close();
    this.channel = null;
  }

  /**
   * Sends one NORMAL message; answers the offset the endpoint placed it at. Retries (same
   * message id) until budgetMs; RmqCallError('fail') only when every attempt was refused.
   */
  async send(topic: string, body: Buffer, messageId: string, budgetMs: number): Promise<number> {
    const request = {
      messages: [{
        topic: { name: topic, resourceNamespace: '' },
        userProperties: {},
        systemProperties: { messageId, keys: [], bornTimestamp: timestampOf(Date.now()), bornHost: 'chaos', bodyEncoding: 'IDENTITY', messageType: 'NORMAL', queueId: 0 },
        body,
      }],
    };
    return this.retrying(budgetMs, async (deadlineMs) => {
      const response = (await this.unary('SendMessage', request, deadlineMs)) as { status: Status | null; entries: { status: Status | null; offset: number }[] };
      const entry = response.entries[0];
      const status = entry?.status ?? response.status;
      checkStatus(status, 'SendMessage');
      if (entry === undefined) throw new RmqCallError('info', 'SendMessage answered OK without an entry');
      return entry.offset;
    });
  }

  /** Acks one received message; RmqCallError('fail') when every attempt was refused (e.g. 40013, a stale receipt). */
  async ack(group: string, message: RmqReceived, budgetMs: number): Promise<void> {
    const request = { group: { name: group, resourceNamespace: '' }, topic: { name: message.topic, resourceNamespace: '' }, entries: [{ messageId: message.messageId, receiptHandle: message.receiptHandle }] };
    await this.retrying(budgetMs, async (deadlineMs) => {
      const response = (await this.unary('AckMessage', request, deadlineMs)) as { status: Status | null; entries: { status: Status | null }[] };
      checkStatus(response.entries[0]?.status ?? response.status, 'AckMessage');
    });
  }

  /**
   * One ReceiveMessage (a simple consumer's: invisible duration, no auto-renew), read to its
   * end; its deadline is requestTimeout + the long poll, as the official client sets it.
   * Not retried: a receive of unknown outcome may have handed messages out, which then come
   * again after their invisible duration.
   */
  async receive(group: string, topic: string, max: number, invisibleDurationMs: number, longPollMs: number): Promise<RmqReceived[]> {
    const request = {
      group: { name: group, resourceNamespace: '' },
      messageQueue: { topic: { name: topic, resourceNamespace: '' }, id: 0, permission: 'READ_WRITE' },
      filterExpression: { type: 'TAG', expression: '*' },
      batchSize: max,
      invisibleDuration: timestampOf(invisibleDurationMs),
      autoRenew: false,
      longPollingTimeout: timestampOf(longPollMs),
    };
    const responses = await this.serverStream('ReceiveMessage', request, RMQ_REQUEST_TIMEOUT_MS + longPollMs);
    const messages: RmqReceived[] = [];
    let status: Status | null = null;
    for (const response of responses as { content?: string; status?: Status | null; message?: ReceivedWire | null }[]) {
      if (response.content === 'status' && response.status != null) status = response.status;
      else if (response.content === 'message' && response.message != null) messages.push(receivedOf(response.message));
    }
    if (status === null) throw new RmqCallError('info', 'ReceiveMessage ended without a status');
    if (status.code === MESSAGE_NOT_FOUND) return [];
    checkStatus(status, 'ReceiveMessage');
    return messages;
  }

  /** Runs attempt until it resolves or budgetMs is spent; the outcome is `fail` only when every attempt's was. */
  private async retrying<T>(budgetMs: number, attempt: (deadlineMs: number) => Promise<T>): Promise<T> {
    const endMs = performance.now() + budgetMs;
    let uncertain = false;
    for (;;) {
      try {
        return await attempt(Math.min(RMQ_REQUEST_TIMEOUT_MS, endMs - performance.now()));
      } catch (error) {
        const failure = error instanceof RmqCallError ? error : new RmqCallError('info', String(error));
        uncertain ||= failure.outcome === 'info';
        const out = this.closed || failure.outcome === 'fail' || endMs - performance.now() < RETRY_PAUSE_MS + MIN_ATTEMPT_MS;
        if (out) throw uncertain && failure.outcome === 'fail' ? new RmqCallError('info', `${failure.message}, after an attempt of unknown outcome`) : failure;
        await sleep(RETRY_PAUSE_MS);
      }
    }
  }

  private unary(method: string, request: unknown, deadlineMs: number): Promise<unknown> {
    const { path, requestSerialize, responseDeserialize } = this.method(method);
    const channel = this.current();
    return new Promise((resolve, reject) => {
      channel.makeUnaryRequest(path, requestSerialize, responseDeserialize, request, this.metadata(), { deadline: Date.now() + deadlineMs }, (error, response) => {
        if (error !== null) reject(this.transportFailure(channel, method, error));
        else resolve(response);
      });
    });
  }

  private serverStream(method: string, request: unknown, deadlineMs: number): Promise<unknown[]> {
    const { path, requestSerialize, responseDeserialize } = this.method(method);
    const channel = this.current();
    return new Promise((resolve, reject) => {
      const responses: unknown[] = [];
      const call = channel.makeServerStreamRequest(path, requestSerialize, responseDeserialize, request, this.metadata(), { deadline: Date.now() + deadlineMs });
      call.on('data', (response: unknown) => responses.push(response));
      call.on('error', (error: grpc.ServiceError) => reject(this.transportFailure(channel, method, error)));
      call.on('end', () => resolve(responses));
    });
  }

  private method(name: string): grpc.MethodDefinition<unknown, unknown> {
    const method = messagingService()[name];
    assert(method !== undefined, `MessagingService has ${name}`);
    return method;
  }

  /** The channel to the current endpoint, dialled on first use. */
  private current(): grpc.Client {
    if (this.closed) throw new RmqCallError('fail', 'the client is closed');
    if (this.channel === null) this.channel = new grpc.Client(this.endpoint, grpc.credentials.createInsecure());
    return this.channel;
  }

  /** A gRPC-level failure (deadline, connection): unknown outcome; the next call dials the next node's endpoint. */
  private transportFailure(channel: grpc.Client, method: string, error: grpc.ServiceError): RmqCallError {
    const endpoint = this.endpoint;
    if (this.channel === channel) {
      channel.close();
      this.channel = null;
      this.index = (this.index + 1) % this.options.endpoints.length;
    }
    return new RmqCallError('info', `${method} on ${endpoint}: gRPC ${grpc.status[error.code] ?? error.code} ${error.details}`);
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set('x-mq-protocol', 'v2');
    metadata.set('x-mq-client-id', this.options.clientId);
    metadata.set('x-mq-date-time', requestDateTime(new Date()));
    metadata.set('x-mq-request-id', randomUUID());
    metadata.set('x-mq-language', 'HTTP');
    metadata.set('x-mq-client-version', CLIENT_VERSION);
    return metadata;
  }
}

/** A status other than OK as the error it is. */
function checkStatus(status: Status | null, method: string): void {
  if (status === null) throw new RmqCallError('info', `${method} answered no status`);
  if (status.code === OK) return;
  throw new RmqCallError(definiteFailure(status.code) ? 'fail' : 'info', `${method}: ${status.code} ${status.message}`);
}

interface ReceivedWire {
  readonly topic: { name: string } | null;
  readonly body: Buffer;
  readonly systemProperties: { messageId: string; receiptHandle?: string; queueId: number; queueOffset?: number; deliveryAttempt?: number } | null;
}

function receivedOf(wire: ReceivedWire): RmqReceived {
  const system = wire.systemProperties;
  if (system === null || system.receiptHandle === undefined || system.queueOffset === undefined || system.deliveryAttempt === undefined) {
    throw new RmqCallError('info', 'a received message lacks its receipt handle, queue offset or delivery attempt');
  }
  return {
    topic: wire.topic?.name ?? '', messageId: system.messageId, receiptHandle: system.receiptHandle, queueId: system.queueId,
    queueOffset: system.queueOffset, deliveryAttempt: system.deliveryAttempt, body: wire.body,
  };
}
