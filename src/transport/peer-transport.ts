// Raft messages between nodes over TCP. Owns the peer listen port, inbound connections (the
// listener's side of the handshake, then MAC checks, decoding and delivery), and one PeerLink
// per peer for sending. Only a connection that completed the handshake can replace a peer's
// older one, so a failed impersonation never disturbs the real peer's link.
//
// Connection model: every node dials every peer and SENDS only on its own outbound link;
// connections it accepted are only READ (apart from the handshake's replies). So each
// ordered pair of nodes has exactly one TCP stream per direction, nobody has to break ties
// between two simultaneous dials, a link's reconnect logic lives on one side only, and send
// order per peer is TCP order on that link. The cost, two sockets per pair instead of one,
// is nothing at cluster sizes of 3–7.
//
// Raft messages are opaque here: whatever value send() got is what onMessage() receives,
// tagged with the id the sending peer authenticated as.

import net from 'node:net';
import pino from 'pino';
import { assert } from '../util/assert.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { drainFrames, encodeFrame, DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, FrameDecoder, assertValidMaxFrameBytes } from './framing.js';
import {
  challengeHello,
  type ClusterSecret,
  MAX_HANDSHAKE_FRAME_BYTES,
  type PeerAccepted,
  type PeerRefusal,
  proofProblem,
  REFUSED_REASON,
  streamMacOf,
  type Transcript,
} from './peer-handshake.js';
import { PeerLink, type PeerAddress, type PeerLinkStats } from './peer-link.js';
import { closeServer, listenOn } from './server-lifecycle.js';
import { type Acceptor, looksLikeTlsHandshake, PLAIN_SOCKETS, type SocketLayer } from './socket-layer.js';

export type { PeerAddress, PeerLinkStats } from './peer-link.js';

export interface PeerTransportOptions {
  clusterId: string;
  selfId: string;
  listenHost: string;
  /** 0 = any free port (tests); see boundPort. */
  listenPort: number;
  peers: PeerAddress[];
  /**
   * The cluster secret every peer must prove (security.clusterSecretFile), or null: then
   * peers are checked for cluster and ids only, which config.ts allows on loopback only.
   */
  clusterSecret: ClusterSecret;
  /** Bound on one Raft message's encoded size. Default 16 MiB. Must be equal on all nodes. */
  maxFrameBytes?: number;
  /** Bound on bytes waiting to be written to one peer; beyond it messages are dropped. Default 32 MiB. */
  maxQueuedBytesPerPeer?: number;
  /** Default 50 ms. */
  reconnectBackoffMinMs?: number;
  /** Default 2000 ms. */
  reconnectBackoffMaxMs?: number;
  /** Time a connection gets to complete the handshake, both directions. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /**
   * Bound on inbound connections that have not completed the handshake. Default 16. At the
   * bound the oldest is closed to admit the new one: strangers holding connections open
   * cannot lock a real peer out, whose handshake completes in a few round trips, long before
   * its connection is the oldest.
   */
  maxPendingConnections?: number;
  /**
   * Plain TCP (default) or TLS (tls-sockets.ts): with TLS the listener requires and verifies
   * each dialer's certificate and the dialer the listener's, both against the CA, before the
   * handshake above runs inside the encrypted stream.
   */
  sockets?: SocketLayer;
  logger?: pino.Logger;
}

type ResolvedOptions = Required<PeerTransportOptions>;

/** At most PEER_WARN_LINES_PER_INTERVAL lines per kind of refusal this often (hostile peers can cause them at will); the rest are counted. */
const PEER_WARN_INTERVAL_MS = 10_000;
const PEER_WARN_LINES_PER_INTERVAL = 10;

export const PEER_TRANSPORT_DEFAULTS = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxQueuedBytesPerPeer: 32 * 1024 * 1024,
  reconnectBackoffMinMs: 50,
  reconnectBackoffMaxMs: 2_000,
  handshakeTimeoutMs: 5_000,
  maxPendingConnections: 16,
  sockets: PLAIN_SOCKETS,
});

interface InboundConnection {
  readonly socket: net.Socket;
  readonly remote: string;
  readonly decoder: FrameDecoder;
  state: 'pending' | 'refused' | 'authenticated';
  /** Counted in pendingConnections (until it authenticates, closes or is evicted). */
  countedPending: boolean;
  /** Set once a well-formed hello was answered: what the dialer's proof must match. */
  challenge: { transcript: Transcript; problem: string | null } | null;
  peerId: string | null;
  handshakeTimer: NodeJS.Timeout | null;
  /** We closed it (a bad frame): says nothing about whether the peer is alive. */
  closedByUs: boolean;
}

export interface InboundStats {
  pendingConnections: number;
  authenticatedConnections: number;
  /** Inbound connections closed for a failed handshake, bad frames or MACs, timeout or eviction at the pending bound. */
  rejectedConnections: number;
}

function resolveOptions(options: PeerTransportOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    ...PEER_TRANSPORT_DEFAULTS,
    logger: pino({ level: 'silent' }),
    ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
  } as ResolvedOptions;
  assertValidMaxFrameBytes(resolved.maxFrameBytes);
  assert(
    resolved.maxQueuedBytesPerPeer >= resolved.maxFrameBytes + FRAME_HEADER_BYTES,
    () => `maxQueuedBytesPerPeer (${resolved.maxQueuedBytesPerPeer}) must hold one frame of maxFrameBytes (${resolved.maxFrameBytes})`,
  );
  assert(resolved.reconnectBackoffMinMs >= 1, 'reconnectBackoffMinMs >= 1');
  assert(resolved.reconnectBackoffMaxMs >= resolved.reconnectBackoffMinMs, 'reconnectBackoffMaxMs >= reconnectBackoffMinMs');
  assert(resolved.handshakeTimeoutMs >= 1, 'handshakeTimeoutMs >= 1');
  assert(Number.isInteger(resolved.maxPendingConnections) && resolved.maxPendingConnections >= 1, 'maxPendingConnections >= 1');
  const ids = resolved.peers.map((peer) => peer.id);
  assert(new Set(ids).size === ids.length, () => `peer ids must be unique: ${ids.join(',')}`);
  assert(!ids.includes(resolved.selfId), () => `peers must not include this node (${resolved.selfId})`);
  return Object.freeze(resolved);
}

export class PeerTransport {
  private readonly options: ResolvedOptions;
  private readonly logger: pino.Logger;
  /** Strangers choose how often these happen. */
  private readonly refusalLog: RateLimitedLog;
  private readonly links = new Map<string, PeerLink>();
  private readonly knownPeerIds: ReadonlySet<string>;
  private readonly inbound = new Set<InboundConnection>();
  private readonly authenticatedInbound = new Map<string, InboundConnection>();
  private pendingConnections = 0;
  private rejectedConnections = 0;
  private server: net.Server | null = null;
  private acceptor: Acceptor | null = null;
  private boundPortNumber: number | null = null;
  private state: 'new' | 'started' | 'closed' = 'new';

  /**
   * onMessage runs synchronously inside the socket's data handler, once per message, with the
   * id the sender authenticated as. It must not throw: an exception there is a bug in the
   * caller and crashes the process (as an InvariantViolation should).
   */
  constructor(
    options: PeerTransportOptions,
    private readonly onMessage: (from: string, message: unknown) => void,
    /** The peer's current connection to us closed (it died, restarts or lost the network). */
    private readonly onPeerDisconnected: (peerId: string) => void = () => undefined,
  ) {
    this.options = resolveOptions(options);
    this.logger = this.options.logger.child({ component: 'peer-transport', node: this.options.selfId });
    this.refusalLog = new RateLimitedLog(this.logger, PEER_WARN_INTERVAL_MS, undefined, PEER_WARN_LINES_PER_INTERVAL);
    this.knownPeerIds = new Set(this.options.peers.map((peer) => peer.id));
    for (const address of this.options.peers) {
      this.links.set(
        address.id,
        new PeerLink(address, {
          clusterId: this.options.clusterId,
          selfId: this.options.selfId,
          clusterSecret: this.options.clusterSecret,
          maxQueuedBytes: this.options.maxQueuedBytesPerPeer,
          reconnectBackoffMinMs: this.options.reconnectBackoffMinMs,
          reconnectBackoffMaxMs: this.options.reconnectBackoffMaxMs,
          handshakeTimeoutMs: this.options.handshakeTimeoutMs,
          sockets: this.options.sockets,
          logger: this.logger,
        }),
      );
    }
  }

  /** Listens on the peer port, then dials every peer (eagerly, so links are up before Raft needs them). */
  async start(): Promise<void> {
    assert(this.state === 'new', 'PeerTransport.start is called once');
    this.state = 'started';
    const acceptor = this.options.sockets.acceptor({
      onStream: (socket) => this.acceptInbound(socket),
      onPlaintext: (socket) => {
        this.rejectedConnections += 1;
        this.refusalLog.warn('refused', { remote: `${socket.remoteAddress}:${socket.remotePort}`, reason: 'plaintext on the TLS peer port (does the dialing node lack security.tls?)' }, 'refusing peer connection');
        socket.destroy();
      },
      onRefused: (reason, remote) => {
        this.rejectedConnections += 1;
        this.refusalLog.warn('refused', { remote, reason }, 'refusing peer connection');
      },
    });
    this.acceptor = acceptor;
    const server = net.createServer((socket) => {
      if (this.state === 'started') acceptor.accept(socket);
      else socket.destroy();
    });
    server.on('error', (error) => this.logger.error({ err: error.message }, 'peer listener error'));
    this.server = server;
    this.boundPortNumber = await listenOn(server, this.options.listenHost, this.options.listenPort, 'raft peers');
    if (this.state !== 'started') {
      // close() ran while listen() was pending and found nothing listening yet: finish its job.
      await closeServer(server);
      return;
    }
    for (const link of this.links.values()) link.start();
  }

  get boundPort(): number {
    assert(this.boundPortNumber !== null, 'boundPort is known once start() resolved');
    return this.boundPortNumber;
  }

  /**
   * Queues a message to a peer and returns at once. A down or slow peer never blocks or throws:
   * past maxQueuedBytesPerPeer the message is dropped and counted. Throws LmqError LMQ_BAD_INPUT
   * if the message cannot be encoded or exceeds maxFrameBytes (the caller must bound its batches).
   */
  send(to: string, message: unknown): void {
    const link = this.links.get(to);
    assert(link !== undefined, () => `send to ${to}, which is not a configured peer`);
    const frame = encodeFrame(message, this.options.maxFrameBytes);
    link.enqueue(frame); // after close() the link counts it as dropped
  }

  stats(): Record<string, PeerLinkStats> {
    const result: Record<string, PeerLinkStats> = {};
    for (const [id, link] of this.links) result[id] = link.stats();
    return result;
  }

  inboundStats(): InboundStats {
    return {
      pendingConnections: this.pendingConnections,
      authenticatedConnections: this.authenticatedInbound.size,
      rejectedConnections: this.rejectedConnections,
    };
  }

  /** Closes the listener, every link and every inbound connection, and clears every timer. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const link of this.links.values()) link.close();
    for (const connection of this.inbound) connection.socket.destroy();
    this.acceptor?.close();
    if (this.server !== null) await closeServer(this.server);
  }

  private acceptInbound(socket: net.Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.state !== 'started') {
      socket.destroy();
      return;
    }
    if (this.pendingConnections >= this.options.maxPendingConnections) this.evictOldestPending(remote);
    const connection: InboundConnection = {
      socket,
      remote,
      decoder: new FrameDecoder(MAX_HANDSHAKE_FRAME_BYTES),
      state: 'pending',
      countedPending: true,
      challenge: null,
      peerId: null,
      handshakeTimer: null,
      closedByUs: false,
    };
    this.inbound.add(connection);
    this.pendingConnections += 1;
    assert(this.pendingConnections <= this.options.maxPendingConnections, 'pending connections within their bound');
    socket.setNoDelay(true);
    connection.handshakeTimer = setTimeout(() => {
      if (connection.state === 'pending') this.reject(connection, connection.challenge?.problem ?? `no handshake within ${this.options.handshakeTimeoutMs} ms`);
      connection.closedByUs = true;
      socket.destroy();
    }, this.options.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onInboundData(connection, chunk));
    socket.on('error', (error) => this.logger.debug({ remote, err: error.message }, 'inbound peer connection error'));
    socket.on('close', () => this.onInboundClosed(connection));
  }

  private onInboundData(connection: InboundConnection, chunk: Buffer): void {
    if (connection.state === 'refused' || connection.socket.destroyed) return;
    const firstChunk = connection.state === 'pending' && connection.challenge === null && connection.decoder.bufferedByteCount === 0;
    const error = drainFrames(connection.decoder, chunk, (value) => this.onInboundFrame(connection, value));
    if (error === undefined) return;
    const tlsHello = firstChunk && !this.options.sockets.tls && looksLikeTlsHandshake(chunk);
    if (connection.state === 'pending') this.reject(connection, tlsHello ? 'a TLS handshake on the plaintext peer port (the dialing node has security.tls, this one has not)' : error.message);
    else this.refusalLog.warn('bad frame', { peer: connection.peerId, err: error.message }, 'closing inbound peer connection: bad frame');
    connection.closedByUs = true;
    connection.socket.destroy();
  }

  private onInboundFrame(connection: InboundConnection, value: unknown): boolean {
    if (connection.socket.destroyed || connection.state === 'refused') return false;
    if (connection.state === 'pending') {
      return connection.challenge === null ? this.challenge(connection, value) : this.authenticate(connection, value);
    }
    assert(connection.peerId !== null, 'an authenticated connection has a peer id');
    this.onMessage(connection.peerId, value);
    return !connection.socket.destroyed;
  }

  /** Answers a well-formed hello with a challenge; refuses a malformed one at once. */
  private challenge(connection: InboundConnection, hello: unknown): boolean {
    assert(connection.state === 'pending' && connection.challenge === null, 'challenge a new connection only');
    const { clusterId, selfId, clusterSecret } = this.options;
    const verdict = challengeHello(hello, { clusterId, selfId, knownPeerIds: this.knownPeerIds }, clusterSecret);
    if (!verdict.accepted) return this.refuse(connection, verdict.reason, verdict.reply);
    connection.challenge = { transcript: verdict.transcript, problem: verdict.problem };
    connection.socket.write(encodeFrame(verdict.challenge, MAX_HANDSHAKE_FRAME_BYTES));
    return true;
  }

  /** The dialer's proof: only now may the connection replace the peer's older one. */
  private authenticate(connection: InboundConnection, proof: unknown): boolean {
    assert(connection.state === 'pending' && connection.challenge !== null, 'authenticate a challenged connection only');
    const { transcript, problem } = connection.challenge;
    const { clusterSecret, maxFrameBytes } = this.options;
    // The proof is checked even when the hello was already wrong: the refusal takes as long
    // either way, so its timing tells a stranger nothing about the ids it guessed.
    const proofReason = proofProblem(proof, transcript, clusterSecret);
    const reason = problem ?? proofReason;
    if (reason !== null) return this.refuse(connection, reason);
    const peerId = transcript.dialerId;
    assert(this.knownPeerIds.has(peerId), 'only a configured peer authenticates');
    this.clearHandshakeTimer(connection);
    this.releasePending(connection);
    connection.state = 'authenticated';
    connection.peerId = peerId;
    // A newer authenticated connection from the same peer means it restarted or redialed: the old one is stale.
    this.authenticatedInbound.get(peerId)?.socket.destroy();
    this.authenticatedInbound.set(peerId, connection);
    connection.decoder.maxFrameBytes = maxFrameBytes;
    connection.decoder.frameMac = streamMacOf(transcript, clusterSecret);
    const accepted: PeerAccepted = { kind: 'lmq-peer-accepted' };
    connection.socket.write(encodeFrame(accepted, MAX_HANDSHAKE_FRAME_BYTES));
    this.logger.info({ peer: peerId, remote: connection.remote, authenticated: clusterSecret !== null }, 'accepted peer connection');
    this.links.get(peerId)?.redialNow(); // only an authenticated peer can make us dial
    return true;
  }

  /** The dialer hears only a generic reason; the detail goes to this node's log. */
  private refuse(connection: InboundConnection, reason: string, reply: PeerRefusal = { kind: 'lmq-peer-refused', reason: REFUSED_REASON }): false {
    this.reject(connection, reason);
    connection.state = 'refused';
    // end() lets the refusal reach the dialer; the handshake timer still destroys the socket
    // if the dialer never closes its side.
    connection.socket.end(encodeFrame(reply, MAX_HANDSHAKE_FRAME_BYTES));
    return false;
  }

  private reject(connection: InboundConnection, reason: string): void {
    assert(connection.state === 'pending', 'reject a pending connection only');
    this.rejectedConnections += 1;
    this.refusalLog.warn('refused', { remote: connection.remote, reason }, 'refusing peer connection');
  }

  /**
   * At the pending bound an unauthenticated connection goes: first the oldest that sent no
   * hello or a hello with the wrong ids (a stranger cannot send a right one without knowing
   * them), then the oldest of the rest. A real peer completes its handshake in one round trip,
   * so a flood of fresh connections cannot push its half-done one out.
   */
  private evictOldestPending(remote: string): void {
    let oldest: InboundConnection | undefined;
    for (const connection of this.inbound) {
      if (!connection.countedPending) continue;
      const plausible = connection.challenge !== null && connection.challenge.problem === null;
      if (!plausible) {
        oldest = connection;
        break;
      }
      oldest ??= connection;
    }
    assert(oldest !== undefined, 'at the pending bound some connection is pending');
    if (oldest.state === 'pending') this.rejectedConnections += 1;
    this.refusalLog.warn('evicted pending', { remote: oldest.remote, newRemote: remote, maxPendingConnections: this.options.maxPendingConnections }, 'closing the oldest unauthenticated peer connection to admit a new one');
    this.releasePending(oldest);
    oldest.state = 'refused';
    oldest.closedByUs = true;
    oldest.socket.destroy();
  }

  private releasePending(connection: InboundConnection): void {
    if (!connection.countedPending) return;
    connection.countedPending = false;
    this.pendingConnections -= 1;
    assert(this.pendingConnections >= 0, 'pending connection count never negative');
  }

  private onInboundClosed(connection: InboundConnection): void {
    this.clearHandshakeTimer(connection);
    assert(this.inbound.delete(connection), 'closed connection was tracked');
    // A dialer that hung up on our challenge did not accept our proof: its config differs
    // from ours (the problem says how), or it was a stranger who learnt nothing.
    if (connection.state === 'pending' && connection.challenge !== null && !connection.closedByUs) {
      this.reject(connection, connection.challenge.problem ?? 'dialer closed the connection instead of answering the challenge');
    }
    this.releasePending(connection);
    if (connection.state !== 'authenticated') return;
    if (connection.peerId !== null && this.authenticatedInbound.get(connection.peerId) === connection) {
      this.authenticatedInbound.delete(connection.peerId);
      // Only a close the peer's side caused: closing the transport, or a connection ourselves,
      // says nothing about whether the peer is alive.
      if (this.state === 'started' && !connection.closedByUs) this.onPeerDisconnected(connection.peerId);
    }
  }

  private clearHandshakeTimer(connection: InboundConnection): void {
    if (connection.handshakeTimer !== null) clearTimeout(connection.handshakeTimer);
    connection.handshakeTimer = null;
  }
}
