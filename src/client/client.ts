// The ledgermq client: finds the leader from any node, follows redirects, retries requests
// that are safe to retry until a deadline, and ends with a clear LMQ_UNAVAILABLE (exit 3 in
// the CLI) when no leader answers. Writes are made idempotent by the caller's request
// identity (producer id and sequence), which the broker deduplicates.
import { setTimeout as sleep } from 'node:timers/promises';
import { assert } from '../util/assert.js';
import { LmqError, isLmqError } from '../util/errors.js';

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

export type Connector = (host: string, port: number, connectTimeoutMs: number) => Promise<ClientConnection>;

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
}

export const DEFAULT_CLIENT_OPTIONS = Object.freeze({
  timeoutMs: 10_000,
  requestTimeoutMs: 3_000,
  connectTimeoutMs: 1_000,
  retryBackoffMinMs: 20,
  retryBackoffMaxMs: 500,
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
   * Sends `body` to the leader, retrying on redirects, connection loss and timeouts until
   * `timeoutMs`. Only idempotent requests may be sent through here. The last indeterminate
   * error is kept as the cause when the deadline passes.
   */
  async call(body: unknown, timeoutMs = this.options.timeoutMs): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    let backoffMs = this.options.retryBackoffMinMs;
    let lastError: unknown = null;
    while (!this.closed) {
      const node = this.pickNode();
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) break;
      try {
        const connection = await this.connect(node);
        const response = await this.slots.run(() => connection.request(body, Math.min(this.options.requestTimeoutMs, remainingMs)));
        this.leaderHint = node.id;
        return response;
      } catch (error) {
        lastError = error;
        if (!this.shouldRetry(node, error)) throw error;
        if (isLmqError(error, 'LMQ_NOT_LEADER') && typeof error.details.leader === 'string') continue; // follow the redirect at once
        await sleep(Math.min(backoffMs, Math.max(0, deadline - Date.now())));
        backoffMs = Math.min(backoffMs * 2, this.options.retryBackoffMaxMs);
      }
    }
    throw new LmqError('LMQ_UNAVAILABLE', `no leader answered within ${timeoutMs} ms (tried ${this.options.nodes.map((n) => `${n.id} ${n.host}:${n.clientPort}`).join(', ')}); is the cluster running?`, {}, { cause: lastError });
  }

  /**
   * One attempt at the node believed to lead, no retry: for requests that must happen at most
   * once and whose outcome nobody waits for (one-way sends).
   */
  async callOnce(body: unknown): Promise<unknown> {
    const node = this.pickNode();
    const connection = await this.connect(node);
    return this.slots.run(() => connection.request(body, this.options.requestTimeoutMs));
  }

  /** Sends `body` to one node, without following redirects (for status). */
  async callNode(nodeId: string, body: unknown, timeoutMs = this.options.requestTimeoutMs): Promise<unknown> {
    const node = this.options.nodes.find((n) => n.id === nodeId);
    assert(node !== undefined, `unknown node ${nodeId}`);
    const connection = await this.connect(node);
    return connection.request(body, timeoutMs);
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

  private shouldRetry(node: ClientNode, error: unknown): boolean {
    if (!isLmqError(error)) {
      // Connection refused, reset and the like: that node is down; try another.
      this.forget(node);
      return true;
    }
    if (error.code === 'LMQ_NOT_LEADER') {
      const leader = error.details.leader;
      this.leaderHint = typeof leader === 'string' && leader !== node.id ? leader : null;
      return true;
    }
    if (!error.retriable) return false;
    // Overloaded or out of order: the node is fine, the request just has to come again.
    if (error.code !== 'LMQ_OVERLOADED' && error.code !== 'LMQ_OUT_OF_ORDER') this.forget(node);
    return true;
  }

  private forget(node: ClientNode): void {
    if (this.leaderHint === node.id) this.leaderHint = null;
    const pending = this.connections.get(node.id);
    this.connections.delete(node.id);
    pending?.then((c) => c.close(), () => undefined);
  }

  private connect(node: ClientNode): Promise<ClientConnection> {
    let pending = this.connections.get(node.id);
    if (pending === undefined) {
      pending = this.connector(node.host, node.clientPort, this.options.connectTimeoutMs);
      this.connections.set(node.id, pending);
      pending.then(
        (c) => c.onClose(() => this.connections.get(node.id) === pending && this.connections.delete(node.id)),
        () => this.connections.get(node.id) === pending && this.connections.delete(node.id),
      );
    }
    return pending;
  }
}
