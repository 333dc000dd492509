// The ledgermq client: finds the leader from any node, follows redirects, retries requests
// that are safe to retry until a deadline, and ends with a clear LMQ_UNAVAILABLE (exit 3 in
// the CLI) when no leader answers. Writes are made idempotent by the caller's request
// identity (producer id and sequence), which the broker deduplicates.
import { setTimeout as sleep } from 'node:timers/promises';
import type { EncodedProduceRequest, OpName, RequestOf, ResponseOf, WireRequest } from '../protocol/index.js';
import type { Credentials } from '../security/signature.js';
import { assert } from '../util/assert.js';
import { LmqError, NOT_SENT, isLmqError } from '../util/errors.js';

export interface ClientNode {
  readonly id: string;
  readonly host: string;
  readonly clientPort: number;
}

/** One request/response connection (the transport's RpcConnection satisfies it). */
export interface ClientConnection {
  request(body: unknown, timeoutMs: number): Promise<unknown>;
  close(): void;
  onClose(callback: () => void): void;
}

/** `credentials`, when given, sign every request sent on the connection. */
/** `nodeId`: the node at host:port, which signed requests name (a node refuses another's). */
export type Connector = (host: string, port: number, connectTimeoutMs: number, credentials: Credentials | undefined, nodeId: string) => Promise<ClientConnection>;

export interface ClientOptions {
  readonly nodes: readonly ClientNode[];
  /** Give up on the whole call (across retries and leader changes) after this long. */
  readonly timeoutMs: number;
  /** One attempt on one node times out after this long. */
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Pause between rounds of failed attempts, doubled up to retryBackoffMaxMs. */
  readonly retryBackoffMinMs: number;
  readonly retryBackoffMaxMs: number;
  /**
   * Requests this client has in flight at once; more wait their turn in order. Kept at or
   * below the broker's per-connection limit (256), which answers LMQ_OVERLOADED beyond it.
   */
  readonly maxInflightRequests: number;
  /** The user every request is signed as; needed when the cluster has an ACL (security.aclFile). */
  readonly credentials?: Credentials;
}

/** A retry is not started with less time than this left before the call's deadline. */
const MIN_RETRY_ATTEMPT_MS = 20;

export const DEFAULT_CLIENT_OPTIONS = Object.freeze({
  timeoutMs: 10_000,
  requestTimeoutMs: 3_000,
  connectTimeoutMs: 1_000,
  retryBackoffMinMs: 20,
  // Low, because the backoff grows while followers still point at a leader that died: a long
  // pause would outlast the election and add to every failover (nodes that know no leader
  // hold requests until one is elected, so retries do not spin meanwhile).
  retryBackoffMaxMs: 100,
  maxInflightRequests: 256,
});

/** A FIFO counting semaphore: callers beyond `limit` wait in arrival order. */
class Slots {
  private inUse = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {
    assert(limit >= 1, 'at least one slot');
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.inUse >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.inUse++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next(); // the slot passes straight to the next waiter
      else this.inUse--;
    }
  }
}

export class LedgerClient {
  private readonly connections = new Map<string, Promise<ClientConnection>>();
  private leaderHint: string | null = null;
  private nextCandidate = 0;
  private closed = false;
  private readonly slots: Slots;

  constructor(
    private readonly options: ClientOptions,
    private readonly connector: Connector,
  ) {
    assert(options.nodes.length > 0, 'the client needs at least one node');
    this.slots = new Slots(options.maxInflightRequests);
  }

  /** The node the client currently believes leads (null until one answered). */
  leader(): string | null {
    return this.leaderHint;
  }

  /**
   * Sends `request` to the leader, retrying on redirects, connection loss and timeouts until
   * `timeoutMs`. Only idempotent requests may be sent through here. `requestTimeoutMs` bounds
   * one attempt (a long-polling pull passes its wait plus a margin). The last error is kept as
   * the cause when the deadline passes; the error is indeterminate only when some attempt's
   * outcome is unknown.
   */
  call<Op extends OpName>(request: RequestOf<Op> & { readonly op: Op }, timeoutMs?: number, requestTimeoutMs?: number, abandon?: AbortSignal): Promise<ResponseOf<Op>>;
  call(request: RequestOf<'produce'> | EncodedProduceRequest, timeoutMs?: number, requestTimeoutMs?: number, abandon?: AbortSignal): Promise<ResponseOf<'produce'>>;
  call(request: WireRequest, timeoutMs?: number, requestTimeoutMs?: number, abandon?: AbortSignal): Promise<ResponseOf<OpName>>;
  async call(request: WireRequest, timeoutMs = this.options.timeoutMs, requestTimeoutMs = this.options.requestTimeoutMs, abandon?: AbortSignal): Promise<unknown> {
    // Monotonic: a wall-clock step must neither end the call at once nor let it retry for an hour.
    const deadline = performance.now() + timeoutMs;
    let backoffMs = this.options.retryBackoffMinMs;
    let lastError: unknown = null;
    let mayHaveHappened = false;
    while (!this.closed && performance.now() < deadline) {
      // Abandoned between attempts only: an attempt on the wire has an outcome worth knowing.
      if (abandon?.aborted) throw abandoned(lastError, mayHaveHappened);
      // A retry in the last moment can only time out, which would make a call whose every
      // attempt was refused look as if it might have happened.
      if (lastError !== null && deadline - performance.now() < MIN_RETRY_ATTEMPT_MS) break;
      // The node and its connection are chosen once a slot is free: by then the leader may
      // have changed, or the connection been replaced.
      const outcome = await this.slots.run(() => this.attempt(request, Math.min(requestTimeoutMs, deadline - performance.now())));
      if ('response' in outcome) return outcome.response;
      lastError = outcome.error;
      mayHaveHappened ||= outcomeUnknown(outcome.error);
      if (!this.shouldRetry(outcome.node, outcome.connection, outcome.error)) throw READ_ONLY_OPS.has(request.op) ? outcome.error : afterUnknownAttempts(outcome.error, mayHaveHappened);
      if (isLmqError(outcome.error, 'LMQ_NOT_LEADER') && typeof outcome.error.details.leader === 'string') continue; // follow the redirect at once
      // Out of order: the leader answers, and the earlier seq is on its way — retry soon, not
      // after the pause this call grew while no leader answered (a failover would pay it once
      // per seq in flight, one after another).
      if (isLmqError(outcome.error, 'LMQ_OUT_OF_ORDER')) backoffMs = this.options.retryBackoffMinMs;
      await sleep(Math.min(backoffMs, Math.max(0, deadline - performance.now())), undefined, { signal: abandon }).catch(() => undefined);
      backoffMs = Math.min(backoffMs * 2, this.options.retryBackoffMaxMs);
    }
    const tried = this.options.nodes.map((n) => `${n.id} ${n.host}:${n.clientPort}`).join(', ');
    throw new LmqError('LMQ_UNAVAILABLE', `no leader answered within ${Math.round(timeoutMs)} ms (tried ${tried}); is the cluster running?`, sentDetails(mayHaveHappened), { cause: lastError });
  }

  // The response is the protocol's answer to the request sent: the transport hands back what
  // the broker's typed handler returned (src/broker/service.ts), so the callers cast nothing.
  private async attempt(body: unknown, timeoutMs: number): Promise<{ response: unknown } | { error: unknown; node: ClientNode; connection: Promise<ClientConnection> }> {
    const node = this.pickNode();
    const connection = this.connect(node);
    try {
      const response = await (await connection).request(body, Math.max(1, timeoutMs));
      this.leaderHint = node.id;
      return { response };
    } catch (error) {
      return { error, node, connection };
    }
  }

  /**
   * One attempt at the node believed to lead, no retry: for requests that must happen at most
   * once and whose outcome nobody waits for (one-way sends).
   */
  callOnce<Op extends OpName>(request: RequestOf<Op> & { readonly op: Op }): Promise<ResponseOf<Op>>;
  callOnce(request: RequestOf<'produce'> | EncodedProduceRequest): Promise<ResponseOf<'produce'>>;
  async callOnce(request: WireRequest): Promise<unknown> {
    const outcome = await this.slots.run(() => this.attempt(request, this.options.requestTimeoutMs));
    if ('response' in outcome) return outcome.response;
    throw outcome.error;
  }

  /** Sends `request` to one node, without following redirects (for status). */
  async callNode<Op extends OpName>(nodeId: string, request: RequestOf<Op> & { readonly op: Op }, timeoutMs = this.options.requestTimeoutMs): Promise<ResponseOf<Op>> {
    const node = this.options.nodes.find((n) => n.id === nodeId);
    assert(node !== undefined, `unknown node ${nodeId}`);
    const connection = await this.connect(node);
    return (await connection.request(request, timeoutMs)) as ResponseOf<Op>;
  }

  /**
   * A failed delivery goes back to the broker: a retry copy in %RETRY%<group>, or past
   * maxReconsumeTimes a dead letter in %DLQ%<group>. Retried like any call: the broker stores
   * one copy per (group, queue, offset) and answers a repeat as a duplicate.
   */
  sendBack(request: Omit<RequestOf<'sendBack'>, 'op'>): Promise<ResponseOf<'sendBack'>> {
    return this.call({ op: 'sendBack', ...request });
  }

  /** The group's dead letters from fromOffset on (at most max). */
  dlqList(request: Omit<RequestOf<'dlqList'>, 'op'>): Promise<ResponseOf<'dlqList'>> {
    return this.call({ op: 'dlqList', ...request });
  }

  /** Re-delivers dead letters not yet resent (the one msgId, else a batch of them) once, through %RETRY%<group>. */
  dlqResend(request: Omit<RequestOf<'dlqResend'>, 'op'>): Promise<ResponseOf<'dlqResend'>> {
    return this.call({ op: 'dlqResend', ...request });
  }

  close(): void {
    this.closed = true;
    for (const pending of this.connections.values()) pending.then((c) => c.close(), () => undefined);
    this.connections.clear();
  }

  private pickNode(): ClientNode {
    const hinted = this.options.nodes.find((n) => n.id === this.leaderHint);
    if (hinted !== undefined) return hinted;
    const node = this.options.nodes[this.nextCandidate % this.options.nodes.length]!;
    this.nextCandidate++;
    return node;
  }

  private shouldRetry(node: ClientNode, connection: Promise<ClientConnection>, error: unknown): boolean {
    if (!isLmqError(error)) {
      // Connection refused, reset and the like: that node is down; try another.
      this.forget(node, connection);
      return true;
    }
    if (error.code === 'LMQ_NOT_LEADER') {
      const leader = error.details.leader;
      this.leaderHint = typeof leader === 'string' && leader !== node.id ? leader : null;
      return true;
    }
    if (!error.retriable) return false;
    if (error.code === 'LMQ_TIMEOUT' || error.code === 'LMQ_LEADERSHIP_LOST') {
      // This node may be hung or no longer lead: ask around, but keep the shared connection —
      // closing it would fail every other request on it.
      if (this.leaderHint === node.id) this.leaderHint = null;
    } else if (error.code !== 'LMQ_OVERLOADED' && error.code !== 'LMQ_OUT_OF_ORDER') {
      this.forget(node, connection);
    }
    return true;
  }

  /** Drops a connection that failed — only that one: a newer connection to the node stays. */
  private forget(node: ClientNode, failed: Promise<ClientConnection>): void {
    if (this.leaderHint === node.id) this.leaderHint = null;
    if (this.connections.get(node.id) !== failed) return;
    this.connections.delete(node.id);
    failed.then((c) => c.close(), () => undefined);
  }

  private connect(node: ClientNode): Promise<ClientConnection> {
    let pending = this.connections.get(node.id);
    if (pending === undefined) {
      pending = this.connector(node.host, node.clientPort, this.options.connectTimeoutMs, this.options.credentials, node.id);
      this.connections.set(node.id, pending);
      pending.then(
        (c) => c.onClose(() => this.connections.get(node.id) === pending && this.connections.delete(node.id)),
        () => this.connections.get(node.id) === pending && this.connections.delete(node.id),
      );
    }
    return pending;
  }
}

/** A call its caller gave up on between attempts: stored only if an earlier attempt may have been. */
function abandoned(lastError: unknown, mayHaveHappened: boolean): LmqError {
  const earlier = mayHaveHappened ? 'an earlier attempt may have been stored' : 'no attempt was carried out';
  return new LmqError('LMQ_UNAVAILABLE', `request abandoned before its next retry; ${earlier}`, sentDetails(mayHaveHappened), { cause: lastError });
}

/** Requests that change nothing: a refusal of one after an unknown attempt is still just a refusal. */
const READ_ONLY_OPS: ReadonlySet<OpName> = new Set<OpName>(['status', 'topics', 'route', 'pull', 'groups', 'queryOffsets', 'lookupByKey', 'lookupByMsgId', 'dlqList', 'txList', 'brokerStats']);

/**
 * A refusal on a retry proves only that this attempt did nothing: after an attempt whose
 * outcome is unknown (e.g. a timeout, then a new leader that has not yet applied the topic it
 * was stored in) the call as a whole may still have happened, so it ends indeterminate.
 */
function afterUnknownAttempts(error: unknown, mayHaveHappened: boolean): unknown {
  if (!mayHaveHappened || outcomeUnknown(error)) return error;
  const refusal = isLmqError(error) ? `${error.code}: ${error.message}` : String(error);
  return new LmqError('LMQ_UNAVAILABLE', `${refusal} — on a retry, after an earlier attempt that may have been carried out`, {}, { cause: error });
}

/** Whether a failed attempt may have been carried out: the catalogue's flag decides, and an error of unknown kind counts as unknown. */
function outcomeUnknown(error: unknown): boolean {
  return !isLmqError(error) || error.indeterminate;
}

/** A call that gives up after attempts whose outcomes are all known carried out nothing. */
function sentDetails(mayHaveHappened: boolean): Readonly<Record<string, unknown>> {
  return mayHaveHappened ? {} : NOT_SENT;
}
