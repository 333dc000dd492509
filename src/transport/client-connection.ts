// One client connection as the client port's server sees it, and the rules that read its
// state: which connection gives way at the connection limit, when a half-sent frame or a silent
// connection is dropped, and the per-connection reply budget that keeps running handlers from
// building more reply bytes than the client is taking away. All times are monotonic
// milliseconds (performance.now()): a wall-clock step must not close or spare connections.
import type net from 'node:net';
import { assert } from '../util/assert.js';
import { LmqError, NOT_SENT } from '../util/errors.js';
import type { FrameDecoder } from './framing.js';

/** The reply bytes one request holds against its connection's budget. */
export interface ReplyReservation {
  bytes: number;
}

interface ReplyWaiter {
  readonly reservation: ReplyReservation;
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: LmqError) => void;
}

export class ClientConnection {
  inflight = 0;
  /** Responses written; 0 means the connection has never been served (not yet active). */
  served = 0;
  /** Last time bytes came from the client or its queued replies drained. */
  lastActivityMs: number;
  /** When the frame being received began; null between frames. */
  partialFrameSinceMs: number | null = null;
  /** Reading is paused because the client is not reading its responses. */
  pausedForReplies = false;
  /** Closed by the server to make room; already removed from the server's set. */
  evicted = false;
  /** A plaintext client on a TLS port: its first request is answered with this, then it is closed. */
  refusal: LmqError | null = null;
  /** Bytes reserved by handlers still building replies (≤ maxReplyBytes unless alone, see fits). */
  private reservedReplyBytes = 0;
  private readonly replyWaiters: ReplyWaiter[] = [];
  private grantScheduled = false;

  /** Taken at accept: the socket forgets it once closed. */
  readonly remoteAddress: string;

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    readonly decoder: FrameDecoder,
    private readonly maxReplyBytes: number,
    nowMs: number,
  ) {
    this.remoteAddress = socket.remoteAddress ?? '';
    assert(Number.isSafeInteger(maxReplyBytes) && maxReplyBytes >= 1, 'maxReplyBytes >= 1');
    this.lastActivityMs = nowMs;
  }

  /** Bytes arrived; `framesCompleted` whole frames were decoded from them. */
  noteData(nowMs: number, framesCompleted: number): void {
    this.lastActivityMs = nowMs;
    if (this.decoder.bufferedByteCount === 0) this.partialFrameSinceMs = null;
    else if (framesCompleted > 0 || this.partialFrameSinceMs === null) this.partialFrameSinceMs = nowMs;
  }

  /** Queued replies drained and reading resumes: the client is taking its replies again. */
  noteDrained(nowMs: number): void {
    this.lastActivityMs = nowMs;
    // The server, not the client, stopped the frame's bytes while paused: its clock restarts.
    if (this.partialFrameSinceMs !== null) this.partialFrameSinceMs = nowMs;
    this.scheduleGrant();
  }

  /** A frame was begun more than timeoutMs ago and is still unfinished (never while we paused reading). */
  partialFrameExpired(nowMs: number, timeoutMs: number): boolean {
    return !this.pausedForReplies && this.partialFrameSinceMs !== null && nowMs - this.partialFrameSinceMs > timeoutMs;
  }

  /**
   * Nothing moved for timeoutMs, and either nothing runs for the client or its replies sit
   * unread (a handler running with the replies flowing — a long poll, a write awaiting its
   * quorum — keeps the connection; long polls are bounded well below the idle timeout).
   */
  idleExpired(nowMs: number, timeoutMs: number): boolean {
    if (nowMs - this.lastActivityMs <= timeoutMs) return false;
    return this.inflight === 0 || this.socket.writableLength > 0;
  }

  /**
   * Waits until `bytes` more reply bytes fit this connection's budget — reserved bytes of running
   * handlers plus replies written but not yet taken by the client — then holds them for
   * `reservation` until release(). A request alone on an empty connection always proceeds, so
   * a budget below one reply delays, never blocks. Waiters are served in arrival order, one per
   * turn of the event loop: each goes on to build a reply of up to `bytes` synchronously (an
   * 8 MiB pull reads and encodes for tens of ms), and Raft's ticks and heartbeats must get to
   * run between them — four at once held the leader's loop for 300 ms on a loaded machine.
   */
  reserve(reservation: ReplyReservation, bytes: number): Promise<void> {
    assert(Number.isSafeInteger(bytes) && bytes >= 0, () => `reserve a byte count, got ${bytes}`);
    return new Promise((resolve, reject) => {
      this.replyWaiters.push({ reservation, bytes, resolve, reject });
      this.scheduleGrant();
    });
  }

  /** The request's reply was written (its bytes now count as queued) or dropped. */
  release(reservation: ReplyReservation): void {
    this.reservedReplyBytes -= reservation.bytes;
    reservation.bytes = 0;
    assert(this.reservedReplyBytes >= 0, 'reserved reply bytes never negative');
    this.scheduleGrant();
  }

  /** The connection closed: handlers waiting for budget give up (their replies have nowhere to go). */
  failReplyWaiters(): void {
    const closed = new LmqError('LMQ_UNAVAILABLE', `client connection ${this.id} closed before its reply could be built`, NOT_SENT);
    for (const waiter of this.replyWaiters.splice(0)) waiter.reject(closed);
  }

  private scheduleGrant(): void {
    if (this.grantScheduled || this.replyWaiters.length === 0) return;
    this.grantScheduled = true;
    setImmediate(() => {
      this.grantScheduled = false;
      this.grantOne();
    });
  }

  /** Grants the first waiter if it fits, and schedules the next grant for the next turn. */
  private grantOne(): void {
    const head = this.replyWaiters[0];
    if (head === undefined || !this.fits(head.bytes)) return; // a release or a drain schedules again
    this.replyWaiters.shift();
    this.hold(head.reservation, head.bytes);
    head.resolve();
    this.scheduleGrant();
  }

  private fits(bytes: number): boolean {
    const used = this.reservedReplyBytes + this.socket.writableLength;
    return used === 0 || used + bytes <= this.maxReplyBytes;
  }

  private hold(reservation: ReplyReservation, bytes: number): void {
    reservation.bytes += bytes;
    this.reservedReplyBytes += bytes;
  }
}

/**
 * The connection that gives way when a new one arrives at the connection limit: the one that
 * never completed a request, else the one idle longest — never one with a request running while
 * an idle one exists. With every connection busy, the one whose replies sit unread, else the
 * one quiet longest. Linear in the connection count (≤ maxConnections, 1024 by default), which
 * costs microseconds per accept and only at the limit.
 */
export function evictionCandidate(connections: Iterable<ClientConnection>): ClientConnection | undefined {
  let best: ClientConnection | undefined;
  let bestRank: readonly [number, number] | undefined;
  for (const connection of connections) {
    const rank = evictionRank(connection);
    if (bestRank === undefined || rank[0] < bestRank[0] || (rank[0] === bestRank[0] && rank[1] < bestRank[1])) {
      best = connection;
      bestRank = rank;
    }
  }
  return best;
}

/** Lower goes first: [class, last activity]. */
function evictionRank(connection: ClientConnection): readonly [number, number] {
  if (connection.inflight === 0) return [connection.served === 0 ? 0 : 1, connection.lastActivityMs];
  return [connection.socket.writableLength > 0 ? 2 : 3, connection.lastActivityMs];
}
