// How the transports get their byte streams: plain TCP, or TLS over it (tls-sockets.ts). The
// peer port and the client port frame bytes on whatever stream a SocketLayer hands them and
// never learn which it is or where its keys came from (src/security/tls.ts reads the config).
//
// Server side, a layer's Acceptor takes each accepted TCP socket and hands the transport a
// stream once frames may flow on it (plain TCP: at once; TLS: after the handshake, bounded in
// time and number) — or, on a TLS port, the raw socket of a client that spoke plaintext, so the
// transport can say so in its own protocol. Client side, connect() dials and names the event
// after which frames may be written.

import net from 'node:net';
import { LmqError, NOT_SENT } from '../util/errors.js';

export interface AcceptHandlers {
  /** A stream ready for frames (its TLS handshake, if any, done and the client verified). */
  onStream(socket: net.Socket): void;
  /** TLS port only: the client's first bytes are not TLS. The socket is paused with them unread. */
  onPlaintext(socket: net.Socket): void;
  /** A connection dropped before it became a stream (handshake failed, timed out, evicted); for the log. */
  onRefused(reason: string, remote: string): void;
}

export interface Acceptor {
  accept(socket: net.Socket): void;
  /** Connections still in their handshake. */
  readonly pendingCount: number;
  /** Destroys every connection still in its handshake. */
  close(): void;
}

export interface Dialed {
  readonly socket: net.Socket;
  /** Frames may be written once the socket emits this ('connect', or 'secureConnect' for TLS). */
  readonly readyEvent: 'connect' | 'secureConnect';
}

export interface SocketLayer {
  readonly tls: boolean;
  acceptor(handlers: AcceptHandlers): Acceptor;
  connect(host: string, port: number): Dialed;
  /** The LmqError a failed connect becomes: LMQ_BAD_CONFIG when it can only be a configuration mismatch. */
  connectError(endpoint: string, error: Error): LmqError;
}

/**
 * TLS record type 22 (handshake), major version 3: how every ClientHello starts. A ledgermq
 * frame starting so would announce ≥ 352 MiB, far above any frame bound (16 MiB by default).
 */
export function looksLikeTlsHandshake(chunk: Uint8Array): boolean {
  return chunk.length >= 2 && chunk[0] === 0x16 && chunk[1] === 0x03;
}

/**
 * What a plaintext port answers a TLS ClientHello with before closing: any bytes that are not a
 * TLS record make the client's TLS library fail with "wrong version number" at once, which the
 * client reports as a port without TLS (tls-sockets.ts), instead of a reset it would retry.
 */
export const NOT_TLS_NOTICE = Buffer.from('ledgermq: this port does not serve TLS\n');

export function unavailable(endpoint: string, what: string, cause?: unknown): LmqError {
  const [host, port] = [endpoint.slice(0, endpoint.lastIndexOf(':')), Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))];
  return new LmqError('LMQ_UNAVAILABLE', `cannot connect to ${endpoint}: ${what}; check that the node is running and the address is right`, { host, port, ...NOT_SENT }, { cause });
}

/** Plain TCP: no handshake, nothing to refuse. */
export const PLAIN_SOCKETS: SocketLayer = Object.freeze({
  tls: false,
  acceptor: (handlers: AcceptHandlers): Acceptor => ({
    accept: (socket: net.Socket) => handlers.onStream(socket),
    pendingCount: 0,
    close: () => undefined,
  }),
  connect: (host: string, port: number): Dialed => ({ socket: net.connect({ host, port }), readyEvent: 'connect' }),
  connectError: (endpoint: string, error: Error) => unavailable(endpoint, (error as NodeJS.ErrnoException).code ?? error.message, error),
});
