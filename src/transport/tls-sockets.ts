// TLS over TCP for the peer port (mutual: both sides present a certificate and verify the
// other's against the CA) and the client port (the server's certificate only). Node's tls
// module does the cryptography and the certificate checks; this module adds what a hostile
// network needs around it: the handshake is bounded in time (from accept, so a connection that
// never sends a byte is dropped too) and in number (at maxPendingHandshakes the oldest
// unfinished handshake gives way, so strangers holding connections open cannot lock anyone
// out), and it tells the two kinds of protocol mismatch apart from a node that is down, so a
// misconfigured client fails at once with one line instead of retrying until its timeout.
//
// Accepting works on the accepted TCP socket: its first bytes are peeked (a plaintext client is
// handed back to the transport, which answers it in its own protocol), then it is handed to a
// tls.Server that never listens — the documented server.emit('connection', socket) — so Node
// applies requestCert/rejectUnauthorized exactly as for a listening tls.Server.

import net from 'node:net';
import tls from 'node:tls';
import { assert } from '../util/assert.js';
import { LmqError, NOT_SENT } from '../util/errors.js';
import { type Acceptor, type AcceptHandlers, type Dialed, looksLikeTlsHandshake, type SocketLayer, unavailable } from './socket-layer.js';

export interface TlsSocketOptions {
  /** PEM certificate (chain) this side presents; needed to accept, and to dial a port that asks for one. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** PEM CA certificate(s) the other side's certificate must chain to; undefined: the system roots. */
  readonly ca?: Buffer;
  /** Accepting: ask for and verify the client's certificate (mutual TLS, the peer port). */
  readonly requireClientCert: boolean;
  /** From accept to a finished handshake. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Handshakes in progress at once per port; at the bound the oldest is dropped. Default 256. */
  readonly maxPendingHandshakes?: number;
}

export const TLS_SOCKET_DEFAULTS = Object.freeze({ handshakeTimeoutMs: 5_000, maxPendingHandshakes: 256 });

/** Errors that say the other side's certificate is not one we trust: a configuration problem, not a node that is down. */
const UNTRUSTED_CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'INVALID_PURPOSE', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED',
]);

interface PendingHandshake {
  readonly socket: net.Socket;
  readonly remote: string;
  readonly timer: NodeJS.Timeout;
}

function remoteOf(socket: net.Socket): string {
  return `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`;
}

class TlsAcceptor implements Acceptor {
  /** By remote address:port, unique among the live connections to one listening port; insertion order is accept order. */
  private readonly pending = new Map<string, PendingHandshake>();
  private readonly server: tls.Server;
  private readonly requireClientCert: boolean;

  constructor(
    options: TlsSocketOptions,
    private readonly handlers: AcceptHandlers,
    private readonly handshakeTimeoutMs: number,
    private readonly maxPending: number,
  ) {
    assert(options.cert !== undefined && options.key !== undefined, 'a TLS port needs a certificate and its key');
    const { cert, key, ca } = options;
    this.requireClientCert = options.requireClientCert;
    this.server = tls.createServer({ cert, key, ...(ca === undefined ? {} : { ca }), requestCert: options.requireClientCert, rejectUnauthorized: true });
    this.server.on('secureConnection', (socket: tls.TLSSocket) => this.onSecure(socket));
    this.server.on('tlsClientError', (error: Error & { code?: string }, socket: tls.TLSSocket) => this.onHandshakeError(error, socket));
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  accept(socket: net.Socket): void {
    const remote = remoteOf(socket);
    if (this.pending.size >= this.maxPending) this.evictOldest();
    socket.setNoDelay(true); // on the TCP socket: a TLS socket over it cannot set it
    const timer = setTimeout(() => {
      this.forget(remote, socket);
      this.refuse(remote, `no TLS handshake within ${this.handshakeTimeoutMs} ms`);
      socket.destroy();
    }, this.handshakeTimeoutMs);
    this.pending.set(remote, { socket, remote, timer });
    assert(this.pending.size <= this.maxPending, 'pending handshakes within their bound');
    socket.on('error', () => undefined); // a reset before the handshake: 'close' cleans up
    socket.once('close', () => this.forget(remote, socket));
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk); // read again by whoever takes the socket (TLSSocket reads what is buffered)
      if (looksLikeTlsHandshake(chunk)) {
        this.server.emit('connection', socket);
        return;
      }
      this.forget(remote, socket);
      this.handlers.onPlaintext(socket);
    });
  }

  close(): void {
    for (const { socket, timer } of this.pending.values()) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.pending.clear();
  }

  private onSecure(socket: tls.TLSSocket): void {
    const remote = remoteOf(socket);
    const entry = this.pending.get(remote);
    // Evicted or timed out while its handshake finished: it was already destroyed.
    if (entry === undefined || socket.destroyed) return;
    this.forget(remote, entry.socket);
    assert(!this.requireClientCert || socket.authorized, 'rejectUnauthorized let only a verified client through');
    this.handlers.onStream(socket);
  }

  /**
   * Node leaves the socket open when someone listens for this; it is of no further use. The
   * pending entry goes with its TCP socket's 'close' (which can come first: the TLS socket
   * cannot name its peer any more by now). A reset with no certificate verdict is not logged:
   * the client went away, or this acceptor dropped it and said why already.
   */
  private onHandshakeError(error: Error & { code?: string }, socket: tls.TLSSocket): void {
    // A verification error code (a string at run time, whatever the typings say), or unset.
    const verdict: unknown = socket.authorizationError;
    socket.destroy();
    const unverified = verdict === undefined || verdict === null;
    if (unverified && error.code === 'ECONNRESET') return;
    const reason = unverified ? error.message.split('\n')[0]! : `client certificate refused (${String(verdict)})`;
    this.refuse(remoteOf(socket), `TLS handshake failed: ${reason}`);
  }

  private evictOldest(): void {
    const [remote, oldest] = this.pending.entries().next().value as [string, PendingHandshake];
    this.forget(remote, oldest.socket);
    this.refuse(remote, `evicted: ${this.maxPending} TLS handshakes pending (maxPendingHandshakes)`);
    oldest.socket.destroy();
  }

  private forget(remote: string, socket: net.Socket): void {
    const entry = this.pending.get(remote);
    if (entry === undefined || entry.socket !== socket) return;
    clearTimeout(entry.timer);
    this.pending.delete(remote);
  }

  private refuse(remote: string, reason: string): void {
    this.handlers.onRefused(reason, remote);
  }
}

export class TlsSockets implements SocketLayer {
  readonly tls = true;
  private readonly handshakeTimeoutMs: number;
  private readonly maxPendingHandshakes: number;

  constructor(private readonly options: TlsSocketOptions) {
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? TLS_SOCKET_DEFAULTS.handshakeTimeoutMs;
    this.maxPendingHandshakes = options.maxPendingHandshakes ?? TLS_SOCKET_DEFAULTS.maxPendingHandshakes;
    assert(Number.isSafeInteger(this.handshakeTimeoutMs) && this.handshakeTimeoutMs >= 1, 'handshakeTimeoutMs >= 1');
    assert(Number.isSafeInteger(this.maxPendingHandshakes) && this.maxPendingHandshakes >= 1, 'maxPendingHandshakes >= 1');
    assert((options.cert === undefined) === (options.key === undefined), 'a certificate comes with its key');
  }

  acceptor(handlers: AcceptHandlers): Acceptor {
    return new TlsAcceptor(this.options, handlers, this.handshakeTimeoutMs, this.maxPendingHandshakes);
  }

  connect(host: string, port: number): Dialed {
    const { cert, key, ca } = this.options;
    const raw = net.connect({ host, port });
    raw.setNoDelay(true);
    // SNI carries names only; an IP address is checked against the certificate's IP SANs.
    const servername = net.isIP(host) === 0 ? { servername: host } : {};
    const socket = tls.connect({ socket: raw, host, ...servername, ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert, key }) });
    return { socket, readyEvent: 'secureConnect' };
  }

  connectError(endpoint: string, error: Error): LmqError {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const firstLine = error.message.split('\n')[0];
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
      const message = `${endpoint} does not serve TLS (it answered the TLS handshake in plaintext): its node has no security.tls; connect without --tls/--tls-ca, or give the node a certificate`;
      return new LmqError('LMQ_BAD_CONFIG', message, { endpoint, ...NOT_SENT }, { cause: error });
    }
    if (UNTRUSTED_CERT_CODES.has(code)) {
      const message = `the TLS certificate of ${endpoint} is not trusted (${code}: ${firstLine}); pass the cluster's CA certificate with --tls-ca FILE (or LMQ_TLS_CA)`;
      return new LmqError('LMQ_BAD_CONFIG', message, { endpoint, ...NOT_SENT }, { cause: error });
    }
    return unavailable(endpoint, code === '' ? firstLine! : `${code}${code === firstLine ? '' : ` (${firstLine})`}`, error);
  }
}
