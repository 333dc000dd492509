// The client port's server side: accepts connections, decodes request frames, runs the
// handler for each (many concurrently per connection, bounded), and writes one response frame
// per request. Owns the limits that keep one client from hurting the others (connection
// count, in-flight requests per connection, reading paused while a client is not reading its
// responses) and graceful close. A bad frame closes only its connection; a handler failure
// becomes an error response. Only InvariantViolation escapes: it crashes the process by design.

import net from 'node:net';
import pino from 'pino';
import { assert, InvariantViolation } from '../util/assert.js';
import { isLmqError, LmqError, NOT_SENT } from '../util/errors.js';
import { assertValidMaxFrameBytes, DEFAULT_MAX_FRAME_BYTES, drainFrames, encodeFrame, FrameDecoder } from './framing.js';
import type { PresentedCredentials } from '../security/signature.js';
import { errorResponse, parseRequest, type RpcRequestFrame, type RpcResponseFrame } from './rpc-protocol.js';
import { closeServer, listenOn } from './server-lifecycle.js';
import { writeCoalesced } from './socket-writes.js';

export interface RpcServerOptions {
  host: string;
  /** 0 = any free port; start() resolves with the bound one. */
  port: number;
  /** Bound on one request or response payload. Default 16 MiB. */
  maxFrameBytes?: number;
  /** Bound on open client connections; more are closed on accept. Default 1024. */
  maxConnections?: number;
  /** Bound on requests running at once per connection; more get LMQ_OVERLOADED. Default 256. */
  maxInflightPerConnection?: number;
  /** How long close() lets in-flight handlers finish and responses flush. Default 5000 ms. */
  closeGracePeriodMs?: number;
  logger?: pino.Logger;
}

export interface RpcContext {
  connectionId: number;
  /** The client's address as the socket reported it at accept ('' if it had none). */
  remoteAddress: string;
  /** What the request carried to prove its sender (rpc-protocol.ts); checked by the handler. */
  credentials: PresentedCredentials;
}

export type RpcHandler = (body: unknown, ctx: RpcContext) => Promise<unknown>;

export const RPC_SERVER_DEFAULTS = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxConnections: 1024,
  maxInflightPerConnection: 256,
  closeGracePeriodMs: 5_000,
});

interface ClientConnection {
  readonly id: number;
  readonly socket: net.Socket;
  /** Taken at accept: the socket forgets it once closed. */
  readonly remoteAddress: string;
  readonly decoder: FrameDecoder;
  inflight: number;
}

type ResolvedOptions = Required<RpcServerOptions>;

function resolveOptions(options: RpcServerOptions): ResolvedOptions {
  const resolved = {
    ...RPC_SERVER_DEFAULTS,
    logger: pino({ level: 'silent' }),
    ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
  } as ResolvedOptions;
  assertValidMaxFrameBytes(resolved.maxFrameBytes);
  assert(Number.isInteger(resolved.maxConnections) && resolved.maxConnections >= 1, 'maxConnections >= 1');
  assert(Number.isInteger(resolved.maxInflightPerConnection) && resolved.maxInflightPerConnection >= 1, 'maxInflightPerConnection >= 1');
  assert(resolved.closeGracePeriodMs >= 0, 'closeGracePeriodMs >= 0');
  return Object.freeze(resolved);
}

/** Resolves when `done()` holds or `timeoutMs` passed, re-checking whenever `changed` is signalled. */
function waitFor(done: () => boolean, subscribe: (changed: () => void) => () => void, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (done()) {
      resolve();
      return;
    }
    const timer = setTimeout(finish, timeoutMs);
    const unsubscribe = subscribe(() => {
      if (done()) finish();
    });
    function finish(): void {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    }
  });
}

export class RpcServer {
  private readonly options: ResolvedOptions;
  private readonly logger: pino.Logger;
  private readonly connections = new Set<ClientConnection>();
  private readonly changeListeners = new Set<() => void>();
  private server: net.Server | null = null;
  private nextConnectionId = 1;
  private inflightTotal = 0;
  private state: 'new' | 'started' | 'closing' | 'closed' = 'new';

  constructor(
    options: RpcServerOptions,
    private readonly handler: RpcHandler,
  ) {
    this.options = resolveOptions(options);
    this.logger = this.options.logger.child({ component: 'rpc-server' });
  }

  /** Listens and resolves with the bound port. */
  async start(): Promise<number> {
    assert(this.state === 'new', 'RpcServer.start is called once');
    this.state = 'started';
    const server = net.createServer((socket) => this.accept(socket));
    server.on('error', (error) => this.logger.error({ err: error.message }, 'client port listener error'));
    this.server = server;
    const port = await listenOn(server, this.options.host, this.options.port, 'clients');
    // close() ran while listen() was pending and found nothing listening yet: finish its job.
    if (this.state !== 'started') await closeServer(server);
    return port;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Stops accepting, answers new requests with LMQ_UNAVAILABLE, lets in-flight handlers finish
   * and their responses flush for up to closeGracePeriodMs, then closes every connection.
   * Handlers still running after the grace period have their responses discarded.
   */
  async close(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return;
    const server = this.server;
    this.state = 'closing';
    if (server === null) {
      this.state = 'closed';
      return;
    }
    const deadlineMs = Date.now() + this.options.closeGracePeriodMs;
    const serverClosed = closeServer(server);
    const subscribe = (listener: () => void): (() => void) => {
      this.changeListeners.add(listener);
      return () => this.changeListeners.delete(listener);
    };
    await waitFor(() => this.inflightTotal === 0, subscribe, deadlineMs - Date.now());
    for (const connection of this.connections) connection.socket.end();
    await waitFor(() => this.connections.size === 0, subscribe, Math.max(0, deadlineMs - Date.now()));
    for (const connection of this.connections) connection.socket.destroy();
    await serverClosed;
    this.state = 'closed';
  }

  private accept(socket: net.Socket): void {
    if (this.state !== 'started' || this.connections.size >= this.options.maxConnections) {
      this.logger.warn({ remote: socket.remoteAddress, open: this.connections.size }, 'refusing client connection: over maxConnections or closing');
      socket.destroy();
      return;
    }
    const connection: ClientConnection = {
      id: this.nextConnectionId++,
      socket,
      remoteAddress: socket.remoteAddress ?? '',
      decoder: new FrameDecoder(this.options.maxFrameBytes),
      inflight: 0,
    };
    this.connections.add(connection);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const error = drainFrames(connection.decoder, chunk, (value) => this.onRequestFrame(connection, value));
      if (error === undefined) return;
      this.logger.warn({ connection: connection.id, err: error.message }, 'closing client connection: bad frame');
      socket.destroy();
    });
    socket.on('error', (error) => this.logger.debug({ connection: connection.id, err: error.message }, 'client connection error'));
    socket.on('close', () => {
      assert(this.connections.delete(connection), 'closed client connection was tracked');
      this.signalChange();
    });
  }

  private onRequestFrame(connection: ClientConnection, value: unknown): boolean {
    if (connection.socket.destroyed) return false;
    const request = parseRequest(value);
    if (typeof request === 'string') {
      this.logger.warn({ connection: connection.id, reason: request }, 'closing client connection: protocol violation');
      connection.socket.destroy();
      return false;
    }
    if (this.state !== 'started') {
      // Refused before the handler saw it: nothing happened (the client may retry anywhere).
      this.respond(connection, errorResponse(request.id, new LmqError('LMQ_UNAVAILABLE', 'node is shutting down; retry against another node', NOT_SENT)));
    } else if (connection.inflight >= this.options.maxInflightPerConnection) {
      const limit = this.options.maxInflightPerConnection;
      const overloaded = new LmqError('LMQ_OVERLOADED', `more than ${limit} requests in flight on one connection; wait for responses before sending more`, { maxInflightPerConnection: limit });
      this.respond(connection, errorResponse(request.id, overloaded));
    } else {
      this.run(connection, request);
    }
    return true;
  }

  private run(connection: ClientConnection, request: RpcRequestFrame): void {
    const { id, body, credentials } = request;
    connection.inflight += 1;
    this.inflightTotal += 1;
    let pending: Promise<unknown>;
    try {
      pending = Promise.resolve(this.handler(body, { connectionId: connection.id, remoteAddress: connection.remoteAddress, credentials }));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending
      .then(
        (result): RpcResponseFrame => ({ id, ok: true, body: result }),
        (error: unknown): RpcResponseFrame => this.handlerFailure(connection, id, error),
      )
      .then((response) => {
        connection.inflight -= 1;
        this.inflightTotal -= 1;
        assert(connection.inflight >= 0 && this.inflightTotal >= 0, 'in-flight counts never negative');
        this.respond(connection, response);
        this.signalChange();
      });
  }

  private handlerFailure(connection: ClientConnection, id: number, error: unknown): RpcResponseFrame {
    if (error instanceof InvariantViolation) {
      // Never caught: rethrow outside the promise chain so the process crashes loudly.
      setImmediate(() => {
        throw error;
      });
    }
    if (isLmqError(error)) return errorResponse(id, error);
    this.logger.error({ connection: connection.id, err: error instanceof Error ? error.stack : String(error) }, 'request handler failed');
    const message = `internal error in request handler: ${error instanceof Error ? error.message : String(error)}; retry, and report it if it persists`;
    return errorResponse(id, new LmqError('LMQ_UNAVAILABLE', message));
  }

  private respond(connection: ClientConnection, response: RpcResponseFrame): void {
    const socket = connection.socket;
    if (socket.destroyed || socket.writableEnded) return; // the client left: nobody to answer
    let frame: Buffer;
    try {
      frame = encodeFrame(response, this.options.maxFrameBytes);
    } catch (error) {
      if (!isLmqError(error)) throw error;
      this.logger.error({ connection: connection.id, err: error.message }, 'cannot encode response');
      frame = encodeFrame(errorResponse(response.id, error), this.options.maxFrameBytes);
    }
    if (!writeCoalesced(socket, frame) && !socket.isPaused()) {
      // The client is not reading its responses: stop reading its requests until it does,
      // so its unread responses, not new work, are what fills memory — bounded by the in-flight limit.
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  }

  private signalChange(): void {
    for (const listener of [...this.changeListeners]) listener();
  }
}
