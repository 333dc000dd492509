// The client port's client side: one TCP connection carrying many concurrent requests, each
// matched to its response by id. Owns the per-request timeout and the mapping of every way a
// request can end without a response to an LmqError that says whether the outcome is known:
// LMQ_TIMEOUT and LMQ_UNAVAILABLE (connection lost) are indeterminate — the server may or may
// not have applied the request — except where nothing was written (no connection, or one
// already closed), which is LMQ_UNAVAILABLE marked `sent: false`.

import net from 'node:net';
import type { Credentials } from '../security/signature.js';
import { assert } from '../util/assert.js';
import { isLmqError, LmqError, NOT_SENT } from '../util/errors.js';
import { assertValidMaxFrameBytes, DEFAULT_MAX_FRAME_BYTES, drainFrames, encodeFrame, FrameDecoder } from './framing.js';
import { errorFromResponse, parseResponse, requestFrameValue } from './rpc-protocol.js';
import { writeCoalesced } from './socket-writes.js';
import { PLAIN_SOCKETS, type SocketLayer, unavailable } from './socket-layer.js';

export interface RpcConnectionOptions {
  /** Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Bound on one request or response payload; keep equal to the server's. Default 16 MiB. */
  maxFrameBytes?: number;
  /** Bound on requests awaiting a response; more are rejected with LMQ_OVERLOADED at once. Default 1024. */
  maxInflightRequests?: number;
  /**
   * Signs every request as this user for the node `audience` (the id of the node this
   * connection reaches); a cluster with security.aclFile refuses unsigned requests.
   */
  signer?: { credentials: Credentials; audience: string };
  /** Plain TCP (default) or TLS (tls-sockets.ts); connectTimeoutMs covers the TLS handshake. */
  sockets?: SocketLayer;
}

type ResolvedConnectionOptions = Required<Omit<RpcConnectionOptions, 'signer'>> & Pick<RpcConnectionOptions, 'signer'>;

export const RPC_CONNECTION_DEFAULTS = Object.freeze({
  connectTimeoutMs: 5_000,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxInflightRequests: 1024,
  sockets: PLAIN_SOCKETS,
});

interface PendingRequest {
  resolve: (body: unknown) => void;
  reject: (error: LmqError) => void;
  timer: NodeJS.Timeout;
}

/** Largest request id before wrapping; ids only need to be unique among requests in flight. */
const MAX_REQUEST_ID = Number.MAX_SAFE_INTEGER;

export class RpcConnection {
  private readonly pending = new Map<number, PendingRequest>();
  private readonly closeListeners: Array<(reason: LmqError) => void> = [];
  private readonly decoder: FrameDecoder;
  private nextRequestId = 1;
  private closeReason: LmqError | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly endpoint: string,
    private readonly options: ResolvedConnectionOptions,
  ) {
    this.decoder = new FrameDecoder(options.maxFrameBytes);
    socket.on('data', (chunk: Buffer) => {
      const error = drainFrames(this.decoder, chunk, (value) => this.onResponseFrame(value));
      if (error !== undefined) this.fail(`bad frame from server: ${error.message}`);
    });
    socket.on('error', (error) => this.fail(`connection error: ${error.message}`));
    socket.on('close', () => this.fail('connection closed by the server'));
  }

  /** Connects; rejects with LMQ_UNAVAILABLE if the port does not answer within connectTimeoutMs. */
  static connect(host: string, port: number, options: RpcConnectionOptions = {}): Promise<RpcConnection> {
    const resolved = { ...RPC_CONNECTION_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) } as ResolvedConnectionOptions;
    assertValidMaxFrameBytes(resolved.maxFrameBytes);
    assert(resolved.connectTimeoutMs >= 1, 'connectTimeoutMs >= 1');
    assert(Number.isInteger(resolved.maxInflightRequests) && resolved.maxInflightRequests >= 1, 'maxInflightRequests >= 1');
    const endpoint = `${host}:${port}`;
    return new Promise((resolve, reject) => {
      const { socket, readyEvent } = resolved.sockets.connect(host, port);
      const fail = (error: LmqError): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(() => fail(unavailable(endpoint, `no answer within ${resolved.connectTimeoutMs} ms`)), resolved.connectTimeoutMs);
      const onError = (error: Error): void => fail(resolved.sockets.connectError(endpoint, error));
      // A TLS server that refuses our handshake may just close: no error event comes then.
      const onClose = (): void => fail(unavailable(endpoint, 'the connection closed before it was ready'));
      socket.once('error', onError);
      socket.once('close', onClose);
      socket.once(readyEvent, () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('close', onClose);
        socket.setNoDelay(true);
        resolve(new RpcConnection(socket, endpoint, resolved));
      });
    });
  }

  get closed(): boolean {
    return this.closeReason !== null;
  }

  get inflightRequests(): number {
    return this.pending.size;
  }

  /**
   * Sends one request and resolves with the server's response body. Rejects with the server's
   * LmqError (same code/message/details), LMQ_TIMEOUT after timeoutMs, LMQ_UNAVAILABLE if the
   * connection is or becomes closed, LMQ_OVERLOADED over maxInflightRequests, LMQ_BAD_INPUT if
   * the body cannot be encoded within maxFrameBytes.
   */
  request(body: unknown, timeoutMs: number): Promise<unknown> {
    assert(Number.isFinite(timeoutMs) && timeoutMs > 0, () => `timeoutMs must be > 0, got ${timeoutMs}`);
    if (this.closeReason !== null) {
      // Nothing is written to a closed connection: this request's outcome is known.
      const message = `the connection to ${this.endpoint} is closed; the request was not sent`;
      return Promise.reject(new LmqError('LMQ_UNAVAILABLE', message, { endpoint: this.endpoint, ...NOT_SENT }, { cause: this.closeReason }));
    }
    if (this.pending.size >= this.options.maxInflightRequests) {
      const limit = this.options.maxInflightRequests;
      return Promise.reject(new LmqError('LMQ_OVERLOADED', `${limit} requests already in flight to ${this.endpoint}; wait for some to finish`, { maxInflightRequests: limit }));
    }
    const id = this.takeRequestId();
    let frame: Buffer;
    try {
      frame = encodeFrame(requestFrameValue(id, body, this.options.signer), this.options.maxFrameBytes);
    } catch (error) {
      return Promise.reject(isLmqError(error) ? error : new LmqError('LMQ_BAD_INPUT', String(error)));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new LmqError('LMQ_TIMEOUT', `no response from ${this.endpoint} within ${timeoutMs} ms; the request may or may not have taken effect`, { timeoutMs }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      writeCoalesced(this.socket, frame);
    });
  }

  /** Closes the connection; requests in flight reject with LMQ_UNAVAILABLE (outcome unknown). */
  close(): void {
    this.fail('connection closed by the client');
  }

  /** Called once, when the connection closes for any reason (immediately if already closed). */
  onClose(listener: (reason: LmqError) => void): void {
    if (this.closeReason !== null) listener(this.closeReason);
    else this.closeListeners.push(listener);
  }

  private takeRequestId(): number {
    // Skip ids still in flight after a wrap (a 2^53 wrap is theoretical, but cheap to handle).
    while (this.pending.has(this.nextRequestId)) this.nextRequestId += 1;
    const id = this.nextRequestId;
    this.nextRequestId = id >= MAX_REQUEST_ID ? 1 : id + 1;
    assert(!this.pending.has(id), 'request ids are unique among requests in flight');
    return id;
  }

  private onResponseFrame(value: unknown): boolean {
    if (this.closeReason !== null) return false;
    const response = parseResponse(value);
    if (typeof response === 'string') {
      this.fail(`protocol violation by server: ${response}`);
      return false;
    }
    const request = this.pending.get(response.id);
    // Unknown id: the request already timed out; its late answer has nobody to go to.
    if (request === undefined) return true;
    this.pending.delete(response.id);
    clearTimeout(request.timer);
    if (response.ok) request.resolve(response.body);
    else request.reject(errorFromResponse(response.error));
    return true;
  }

  /** Ends the connection once: every pending request and close listener learns why. */
  private fail(why: string): void {
    if (this.closeReason !== null) return;
    const reason = new LmqError('LMQ_UNAVAILABLE', `${why} (${this.endpoint}); requests in flight may or may not have taken effect`, { endpoint: this.endpoint });
    this.closeReason = reason;
    this.socket.destroy();
    for (const request of this.pending.values()) {
      clearTimeout(request.timer);
      request.reject(reason);
    }
    this.pending.clear();
    for (const listener of this.closeListeners.splice(0)) listener(reason);
    assert(this.pending.size === 0, 'no request outlives its connection');
  }
}
