// One outbound link to one peer: the only connection this node SENDS Raft messages on to that
// peer. Owns dialing, the dialer's side of the handshake (peer-handshake.ts) and the MAC on
// every frame sent after it (frame-mac.ts), reconnecting with exponential backoff and
// jitter, the bounded send queue (over its byte bound, messages are dropped and counted —
// Raft tolerates loss, it does not tolerate a node blocking or running out of memory), and
// batching every frame queued in one event-loop turn into one corked write.
// Frames on one link reach the peer in enqueue order for as long as the connection lasts.

import net from 'node:net';
import type pino from 'pino';
import { assert } from '../util/assert.js';
import { drainFrames, encodeFrame, FrameDecoder } from './framing.js';
import type { FrameMac } from './frame-mac.js';
import {
  acceptanceProblem,
  answerChallenge,
  type ClusterSecret,
  helloFor,
  MAX_HANDSHAKE_FRAME_BYTES,
  newNonce,
  streamMacOf,
  type Transcript,
} from './peer-handshake.js';
import type { SocketLayer } from './socket-layer.js';

export interface PeerAddress {
  id: string;
  host: string;
  port: number;
}

export interface PeerLinkSettings {
  clusterId: string;
  selfId: string;
  clusterSecret: ClusterSecret;
  maxQueuedBytes: number;
  reconnectBackoffMinMs: number;
  reconnectBackoffMaxMs: number;
  handshakeTimeoutMs: number;
  sockets: SocketLayer;
  logger: pino.Logger;
}

/** One dial's handshake: our nonce, and once our proof is sent, what it proved. */
interface DialHandshake {
  readonly dialerNonce: Uint8Array;
  proved: Transcript | null;
}

export interface PeerLinkStats {
  connected: boolean;
  queuedBytes: number;
  droppedMessages: number;
  sentMessages: number;
}

export class PeerLink {
  private socket: net.Socket | null = null;
  /** True once the peer accepted this node's proof on `socket`; only then are frames written. */
  private connected = false;
  /** Tags the frames written on `socket` (null without a cluster secret). */
  private frameMac: FrameMac | null = null;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private droppedMessages = 0;
  private sentMessages = 0;
  private waitingForDrain = false;
  private flushImmediate: NodeJS.Immediate | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  /** Dial attempts since the last successful handshake; drives the backoff. */
  private failedAttempts = 0;
  private closed = false;

  constructor(
    readonly address: PeerAddress,
    private readonly settings: PeerLinkSettings,
  ) {
    assert(address.id !== settings.selfId, 'a node never links to itself');
    assert(settings.maxQueuedBytes >= 1, 'maxQueuedBytes >= 1');
  }

  start(): void {
    assert(!this.closed, 'start after close');
    assert(this.socket === null, 'start only once');
    this.dial();
  }

  /**
   * The peer is up (it just authenticated a connection to us): if this link waits out a
   * reconnect backoff, dial now. After a restart the backoff may have grown to
   * reconnectBackoffMaxMs, which would hold the first election back as long.
   */
  redialNow(): void {
    if (this.closed || this.reconnectTimer === null) return;
    assert(this.socket === null, 'a pending reconnect has no socket');
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.dial();
  }

  /** Queues one complete frame; never blocks. Returns false if it was dropped (queue full or link closed). */
  enqueue(frame: Buffer): boolean {
    assert(frame.length > 0, 'a frame has a header');
    if (this.closed || this.queuedBytes + frame.length > this.settings.maxQueuedBytes) {
      this.droppedMessages += 1;
      return false;
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    assert(this.queuedBytes <= this.settings.maxQueuedBytes, 'queue within its byte bound');
    this.scheduleFlush();
    return true;
  }

  stats(): PeerLinkStats {
    return {
      connected: this.connected,
      queuedBytes: this.queuedBytes,
      droppedMessages: this.droppedMessages,
      sentMessages: this.sentMessages,
    };
  }

  close(): void {
    this.closed = true;
    this.clearTimers();
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    this.socket?.destroy();
    this.socket = null;
    this.connected = false;
    this.frameMac = null;
    this.queue = [];
    this.queuedBytes = 0;
  }

  private dial(): void {
    assert(!this.closed, 'no dialing after close');
    assert(this.socket === null, 'one outbound connection per peer');
    const { host, port, id } = this.address;
    const { socket, readyEvent } = this.settings.sockets.connect(host, port);
    this.socket = socket;
    socket.setNoDelay(true);
    // Covers the whole handshake: a peer that accepts and never answers is dropped.
    this.handshakeTimer = setTimeout(() => {
      this.settings.logger.warn({ peer: id, host, port }, 'peer handshake timed out; reconnecting');
      socket.destroy();
    }, this.settings.handshakeTimeoutMs);
    const decoder = new FrameDecoder(MAX_HANDSHAKE_FRAME_BYTES);
    const handshake: DialHandshake = { dialerNonce: newNonce(), proved: null };
    const hello = helloFor({ clusterId: this.settings.clusterId, dialerId: this.settings.selfId, listenerId: id, dialerNonce: handshake.dialerNonce });
    socket.on(readyEvent, () => socket.write(encodeFrame(hello, MAX_HANDSHAKE_FRAME_BYTES)));
    socket.on('data', (chunk: Buffer) => {
      const error = drainFrames(decoder, chunk, (value) => this.onReply(socket, value, handshake));
      if (error !== undefined) {
        this.settings.logger.warn({ peer: id, err: error.message }, 'bad frame from peer on outbound link; reconnecting');
        socket.destroy();
      }
    });
    // 'close' always follows 'error'; the failed attempt is counted there.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A refused or untrusted certificate is a configuration problem worth a line per attempt
      // (the backoff bounds them); a peer that is down is not.
      const tlsProblem = this.settings.sockets.tls && !this.connected && !['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(error.code ?? '');
      if (tlsProblem) this.settings.logger.warn({ peer: id, err: error.message.split('\n')[0] }, 'TLS handshake with peer failed; will retry');
      else this.settings.logger.debug({ peer: id, err: error.message }, 'peer link error');
    });
    socket.on('close', () => this.onSocketClosed(socket));
  }

  /**
   * The listener sends its challenge (or a refusal), then once our proof checks out its
   * acceptance (or a refusal), and nothing else: anything more ends the connection.
   */
  private onReply(socket: net.Socket, value: unknown, handshake: DialHandshake): boolean {
    if (socket !== this.socket || socket.destroyed) return false;
    const peer = this.address.id;
    const answering = !this.connected && handshake.proved === null;
    const reason = this.connected
      ? 'peer sent data after the handshake on an outbound link'
      : answering
        ? this.answer(socket, value, handshake)
        : acceptanceProblem(value);
    if (reason !== null) {
      this.settings.logger.warn({ peer, reason }, 'peer handshake failed; will retry');
      socket.destroy();
      return false;
    }
    if (answering) return true; // our proof is out; the acceptance comes next
    assert(handshake.proved !== null, 'accepted after our proof');
    this.frameMac = streamMacOf(handshake.proved, this.settings.clusterSecret);
    this.clearTimers();
    this.connected = true;
    this.failedAttempts = 0;
    this.settings.logger.info({ peer, authenticated: this.frameMac !== null }, 'connected to peer');
    this.scheduleFlush();
    return true;
  }

  /** Checks the listener's challenge and sends our proof; returns why not, or null. */
  private answer(socket: net.Socket, challenge: unknown, handshake: DialHandshake): string | null {
    const { clusterId, selfId, clusterSecret } = this.settings;
    const verdict = answerChallenge(challenge, { clusterId, selfId, peerId: this.address.id, dialerNonce: handshake.dialerNonce }, clusterSecret);
    if (!verdict.accepted) return verdict.reason;
    socket.write(encodeFrame(verdict.reply, MAX_HANDSHAKE_FRAME_BYTES));
    handshake.proved = verdict.transcript;
    return null;
  }

  private onSocketClosed(socket: net.Socket): void {
    if (socket !== this.socket) return;
    const wasConnected = this.connected;
    this.socket = null;
    this.connected = false;
    this.frameMac = null;
    this.waitingForDrain = false;
    this.clearTimers();
    if (this.closed) return;
    if (wasConnected) this.settings.logger.info({ peer: this.address.id }, 'lost connection to peer; reconnecting');
    else this.failedAttempts += 1;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    assert(this.reconnectTimer === null, 'one reconnect pending at a time');
    assert(!this.closed, 'no reconnect after close');
    const { reconnectBackoffMinMs: minMs, reconnectBackoffMaxMs: maxMs } = this.settings;
    const ceilingMs = Math.min(maxMs, minMs * 2 ** Math.min(this.failedAttempts, 30));
    // Jitter in [ceiling/2, ceiling] so nodes restarted together do not dial in lockstep.
    const delayMs = Math.round(ceilingMs / 2 + (Math.random() * ceilingMs) / 2);
    assert(delayMs <= maxMs, 'backoff within its bound');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.dial();
    }, delayMs);
  }

  private scheduleFlush(): void {
    if (this.flushImmediate !== null || !this.connected || this.waitingForDrain) return;
    // One write per event-loop turn: every send() made during this turn shares one writev.
    this.flushImmediate = setImmediate(() => {
      this.flushImmediate = null;
      this.flush();
    });
  }

  private flush(): void {
    const socket = this.socket;
    if (socket === null || !this.connected || this.waitingForDrain || this.queue.length === 0) return;
    // Destroyed (reset by the peer) but 'close' not yet emitted: keep the frames queued for
    // the next connection; onSocketClosed will reconnect.
    if (socket.destroyed) return;
    const frames = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    const frameMac = this.frameMac;
    socket.cork();
    let belowHighWaterMark = true;
    for (const frame of frames) {
      belowHighWaterMark = socket.write(frame);
      // The tag goes out as its own buffer of the same writev: the queued frame stays as encoded.
      if (frameMac !== null) belowHighWaterMark = socket.write(frameMac.next(frame));
    }
    socket.uncork();
    this.sentMessages += frames.length;
    if (!belowHighWaterMark) {
      // Stop handing frames to the socket until it drains, so the bounded queue (not the
      // socket's unbounded buffer) absorbs a slow peer.
      this.waitingForDrain = true;
      socket.once('drain', () => {
        if (socket !== this.socket) return;
        this.waitingForDrain = false;
        this.scheduleFlush();
      });
    }
  }

  private clearTimers(): void {
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }
}
