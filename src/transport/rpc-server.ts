// The client port's server side: accepts connections, decodes request frames, runs the
// handler for each (many concurrently per connection, bounded), and writes one response frame
// per request. Owns the limits that keep one client from hurting the others — every client,
// hostile or not, may share one address, so none of them is per address: the connection
// count (at the limit the least useful connection gives way, src/transport/client-connection.ts),
// a deadline on a half-sent frame, an idle timeout, in-flight requests per connection, and a
// per-connection reply budget (reading paused while a client is not reading its responses, and
// handlers wait for budget before building a large reply) — and graceful close. A bad frame
// closes only its connection; a handler failure becomes an error response. Warnings a client
// can trigger at will are rate-limited. Only InvariantViolation escapes: it crashes the process
// by design.

import net from 'node:net';
import pino from 'pino';
import { assert, InvariantViolation } from '../util/assert.js';
import { isLmqError, LmqError, NOT_SENT } from '../util/errors.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { ClientConnection, evictionCandidate, type ReplyReservation } from './client-connection.js';
import { assertValidMaxFrameBytes, DEFAULT_MAX_FRAME_BYTES, drainFrames, encodeFrame, FrameDecoder } from './framing.js';
import type { PresentedCredentials } from '../security/signature.js';
import { errorResponse, parseRequest, type RpcRequestFrame, type RpcResponseFrame } from './rpc-protocol.js';
import { closeServer, listenOn } from './server-lifecycle.js';
import { writeCoalesced } from './socket-writes.js';
import { type Acceptor, looksLikeTlsHandshake, NOT_TLS_NOTICE, PLAIN_SOCKETS, type SocketLayer } from './socket-layer.js';

export interface RpcServerOptions {
  host: string;
  /** 0 = any free port; start() resolves with the bound one. */
  port: number;
  /** Bound on one request or response payload. Default 16 MiB. */
  maxFrameBytes?: number;
  /**
   * Bound on open client connections. A new one at the limit evicts the connection that never
   * completed a request or was idle longest (one with requests running only if none is idle).
   * Default 1024.
   */
  maxConnections?: number;
  /** Bound on requests running at once per connection; more get LMQ_OVERLOADED. Default 256. */
  maxInflightPerConnection?: number;
  /** A frame begun and not finished within this closes its connection (slowloris). Default 5000 ms. */
  partialFrameTimeoutMs?: number;
  /**
   * A connection with no traffic for this long is closed — when nothing runs for it, or its
   * replies sit unread. Long polls (≤ 30 s) and consumer heartbeats (every 1 s) keep it.
   * Default 120000 ms (RocketMQ's serverChannelMaxIdleTimeSeconds).
   */
  idleTimeoutMs?: number;
  /**
   * Bound on reply bytes per connection: bytes reserved by handlers building replies plus
   * replies written but not yet taken by the client. A handler that reserves (RpcContext)
   * waits while it is full. Default 16 MiB (two 8 MiB pulls; 1024 connections could still
   * hold 16 GiB between them — there is no global bound yet).
   */
  maxReplyBytesPerConnection?: number;
  /** At most one warning line per reason per this interval, with a suppressed count. Default 10000 ms. */
  warnIntervalMs?: number;
  /** How long close() lets in-flight handlers finish and responses flush. Default 5000 ms. */
  closeGracePeriodMs?: number;
  /** Plain TCP (default) or TLS (tls-sockets.ts, which bounds the handshakes). */
  sockets?: SocketLayer;
  logger?: pino.Logger;
}

export interface RpcContext {
  connectionId: number;
  /**
   * Waits until `bytes` more reply bytes fit the connection's reply budget and holds them until
   * this request's response is written. Call it before building a large reply (a pull), after
   * any long wait: a waiting request should not hold budget. Rejects with LMQ_UNAVAILABLE when
   * the connection closes meanwhile.
   */
  reserveReplyBytes(bytes: number): Promise<void>;
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
  partialFrameTimeoutMs: 5_000,
  idleTimeoutMs: 120_000,
  maxReplyBytesPerConnection: 16 * 1024 * 1024,
  warnIntervalMs: 10_000,
  closeGracePeriodMs: 5_000,
  sockets: PLAIN_SOCKETS,
});

/** How often the connection timeouts are checked, at most (a quarter of the shorter timeout below this). */
const MAX_SWEEP_INTERVAL_MS = 1_000;

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
  assert(Number.isSafeInteger(resolved.partialFrameTimeoutMs) && resolved.partialFrameTimeoutMs >= 1, 'partialFrameTimeoutMs >= 1');
  assert(Number.isSafeInteger(resolved.idleTimeoutMs) && resolved.idleTimeoutMs >= 1, 'idleTimeoutMs >= 1');
  assert(Number.isSafeInteger(resolved.maxReplyBytesPerConnection) && resolved.maxReplyBytesPerConnection >= 1, 'maxReplyBytesPerConnection >= 1');
  assert(resolved.warnIntervalMs >= 0, 'warnIntervalMs >= 0');
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
  private readonly warnings: RateLimitedLog;
  /** Insertion order is accept order. */
  private readonly connections = new Set<ClientConnection>();
  private readonly changeListeners = new Set<() => void>();
  private server: net.Server | null = null;
  private acceptor: Acceptor | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private nextConnectionId = 1;
  private boundPort: number | null = null;
  private inflightTotal = 0;
  private state: 'new' | 'started' | 'closing' | 'closed' = 'new';

  constructor(
    options: RpcServerOptions,
    private readonly handler: RpcHandler,
  ) {
    this.options = resolveOptions(options);
    this.logger = this.options.logger.child({ component: 'rpc-server' });
    this.warnings = new RateLimitedLog(this.logger, this.options.warnIntervalMs);
  }

  /** Listens and resolves with the bound port. */
  async start(): Promise<number> {
    assert(this.state === 'new', 'RpcServer.start is called once');
    this.state = 'started';
    const acceptor = this.options.sockets.acceptor({
      onStream: (socket) => this.accept(socket, null),
      onPlaintext: (socket) => this.accept(socket, this.tlsRequired()),
      onRefused: (reason, remote) => this.warnings.warn('tls-handshake', { remote, reason }, 'closing client connection: TLS handshake not completed'),
    });
    this.acceptor = acceptor;
    const server = net.createServer((socket) => {
      if (this.state === 'started') acceptor.accept(socket);
      else socket.destroy();
    });
    server.on('error', (error) => this.logger.error({ err: error.message }, 'client port listener error'));
    this.server = server;
    const port = await listenOn(server, this.options.host, this.options.port, 'clients');
    this.boundPort = port;
    // close() ran while listen() was pending and found nothing listening yet: finish its job.
    if (this.state !== 'started') await closeServer(server);
    else this.startSweeping();
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
    this.stopSweeping();
    this.acceptor?.close();
    const deadlineMs = performance.now() + this.options.closeGracePeriodMs;
    const serverClosed = closeServer(server);
    const subscribe = (listener: () => void): (() => void) => {
      this.changeListeners.add(listener);
      return () => this.changeListeners.delete(listener);
    };
    await waitFor(() => this.inflightTotal === 0, subscribe, deadlineMs - performance.now());
    for (const connection of this.connections) connection.socket.end();
    await waitFor(() => this.connections.size === 0, subscribe, Math.max(0, deadlineMs - performance.now()));
    for (const connection of this.connections) connection.socket.destroy();
    await serverClosed;
    this.warnings.flush();
    this.state = 'closed';
  }

  /** What a plaintext client of a TLS port is told, in its own protocol, for its first request. */
  private tlsRequired(): LmqError {
    const endpoint = `${this.options.host}:${this.boundPort ?? this.options.port}`;
    const message = `the client port ${endpoint} serves TLS (security.tls): connect with --tls-ca FILE (or LMQ_TLS_CA) naming the cluster's CA certificate, or --tls if its certificate chains to a system root`;
    return new LmqError('LMQ_BAD_CONFIG', message, NOT_SENT);
  }

  /** `refusal`: a plaintext client on a TLS port; its first request is answered with it, then the connection ends. */
  private accept(socket: net.Socket, refusal: LmqError | null): void {
    if (this.state !== 'started') {
      this.warnings.warn('closing', { remote: socket.remoteAddress }, 'refusing client connection: the node is shutting down');
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.options.maxConnections) this.evictOne();
    const connection = new ClientConnection(this.nextConnectionId++, socket, new FrameDecoder(this.options.maxFrameBytes, 'frame'), this.options.maxReplyBytesPerConnection, performance.now());
    connection.refusal = refusal;
    this.connections.add(connection);
    assert(this.connections.size <= this.options.maxConnections, 'open connections stay within maxConnections');
    socket.setNoDelay(true);
    let firstChunk = true;
    socket.on('data', (chunk: Buffer) => {
      if (socket.writableEnded) return;
      let frames = 0;
      const error = drainFrames(connection.decoder, chunk, (value) => {
        frames += 1;
        return this.onRequestFrame(connection, value);
      });
      if (error !== undefined) this.onBadFrame(connection, error, firstChunk && looksLikeTlsHandshake(chunk));
      else connection.noteData(performance.now(), frames);
      firstChunk = false;
    });
    socket.on('error', (error) => this.logger.debug({ connection: connection.id, err: error.message }, 'client connection error'));
    socket.on('close', () => {
      assert(this.connections.delete(connection) || connection.evicted, 'closed client connection was tracked');
      connection.failReplyWaiters();
      this.signalChange();
    });
    if (refusal !== null) socket.resume(); // the acceptor paused it with the client's first bytes unread
  }

  /**
   * A TLS client on this plaintext port gets bytes that are not TLS, so its TLS library fails
   * at once with an error the client reports as a port without TLS; anything else just closes.
   */
  private onBadFrame(connection: ClientConnection, error: Error, tlsHello: boolean): void {
    if (tlsHello && !this.options.sockets.tls) {
      this.warnings.warn('tls-on-plaintext', { connection: connection.id }, 'closing client connection: a TLS handshake on the plaintext client port (this node has no security.tls)');
      connection.socket.end(NOT_TLS_NOTICE);
      return;
    }
    this.warnings.warn('bad-frame', { connection: connection.id, err: error.message }, 'closing client connection: bad frame');
    connection.socket.destroy();
  }

  /** Makes room for a new connection at maxConnections (see evictionCandidate). */
  private evictOne(): void {
    const victim = evictionCandidate(this.connections);
    assert(victim !== undefined, 'at maxConnections >= 1 there is a connection to evict');
    // Out of the set now, not at its close event: the new connection takes its place at once.
    this.connections.delete(victim);
    victim.evicted = true;
    const fields = { connection: victim.id, served: victim.served, inflight: victim.inflight, idleMs: Math.round(performance.now() - victim.lastActivityMs), open: this.connections.size };
    this.warnings.warn('evicted', fields, 'closing a client connection to make room for a new one: at maxConnections');
    victim.socket.destroy();
  }

  /** Closes connections whose half-sent frame or silence outlasted its bound. */
  private sweep(): void {
    const nowMs = performance.now();
    for (const connection of this.connections) {
      if (connection.socket.destroyed) continue;
      if (connection.partialFrameExpired(nowMs, this.options.partialFrameTimeoutMs)) {
        this.warnings.warn('partial-frame', { connection: connection.id, partialFrameTimeoutMs: this.options.partialFrameTimeoutMs }, 'closing client connection: a frame was begun and not finished in time');
        connection.socket.destroy();
      } else if (connection.idleExpired(nowMs, this.options.idleTimeoutMs)) {
        this.warnings.info('idle', { connection: connection.id, idleTimeoutMs: this.options.idleTimeoutMs, unreadReplyBytes: connection.socket.writableLength }, 'closing client connection: no traffic within the idle timeout');
        connection.socket.destroy();
      }
    }
  }

  private startSweeping(): void {
    const everyMs = Math.min(MAX_SWEEP_INTERVAL_MS, Math.ceil(Math.min(this.options.partialFrameTimeoutMs, this.options.idleTimeoutMs) / 4));
    this.sweepTimer = setInterval(() => this.sweep(), everyMs);
    this.sweepTimer.unref();
  }

  private stopSweeping(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  private onRequestFrame(connection: ClientConnection, value: unknown): boolean {
    if (connection.socket.destroyed) return false;
    const request = parseRequest(value);
    if (typeof request === 'string') {
      this.warnings.warn('protocol-violation', { connection: connection.id, violation: request }, 'closing client connection: protocol violation');
      connection.socket.destroy();
      return false;
    }
    if (connection.refusal !== null) {
      this.respond(connection, errorResponse(request.id, connection.refusal));
      connection.socket.end();
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
    const reservation: ReplyReservation = { bytes: 0 };
    const context: RpcContext = {
      connectionId: connection.id, remoteAddress: connection.remoteAddress, credentials, reserveReplyBytes: (bytes) => connection.reserve(reservation, bytes),
    };
    let pending: Promise<unknown>;
    try {
      pending = Promise.resolve(this.handler(body, context));
    } catch (error) {
      pending = Promise.reject(error);
    }
    // One reaction for either outcome: one promise a request fewer than a then() for each step.
    const answer = (response: RpcResponseFrame): void => {
      connection.inflight -= 1;
      this.inflightTotal -= 1;
      assert(connection.inflight >= 0 && this.inflightTotal >= 0, 'in-flight counts never negative');
      this.respond(connection, response);
      // Written: its bytes now count as queued (socket.writableLength), no longer as reserved.
      connection.release(reservation);
      this.signalChange();
    };
    pending.then(
      (result) => answer({ id, ok: true, body: result }),
      (error: unknown) => answer(this.handlerFailure(connection, id, error)),
    );
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
    // A refused request (a stranger's) earns no standing against eviction.
    if (response.ok || response.error.code !== 'LMQ_UNAUTHENTICATED') connection.served += 1;
    if (!writeCoalesced(socket, frame) && !connection.pausedForReplies) {
      // The client is not reading its responses: stop reading its requests until it does, so
      // its unread responses, not new work, are what fills memory. Handlers already running
      // that build large replies wait for the reply budget (RpcContext.reserveReplyBytes):
      // pausing alone did not hold when 256 pipelined 8 MiB pulls were already running.
      connection.pausedForReplies = true;
      socket.pause();
      socket.once('drain', () => {
        connection.pausedForReplies = false;
        socket.resume();
        connection.noteDrained(performance.now());
      });
    }
  }

  private signalChange(): void {
    for (const listener of [...this.changeListeners]) listener();
  }
}
