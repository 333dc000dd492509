// Shared helpers for the transport tests: free ports, polling with a generous bound, a pino
// logger whose records the test can inspect, raw sockets for sending hostile bytes (and for
// playing a peer's handshake by hand), and a cleanup list that afterEach drains even when a test fails.

import net from 'node:net';
import pino from 'pino';
import type { FrameMac } from '../src/transport/frame-mac.js';
import { drainFrames, encodeFrame, FrameDecoder } from '../src/transport/framing.js';
import { RpcConnection, type RpcConnectionOptions } from '../src/transport/rpc-connection.js';
import { RpcServer, type RpcHandler, type RpcServerOptions } from '../src/transport/rpc-server.js';
import {
  acceptanceProblem,
  answerChallenge,
  type ClusterSecret,
  helloFor,
  MAX_HANDSHAKE_FRAME_BYTES,
  newNonce,
  streamMacOf,
} from '../src/transport/peer-handshake.js';

export const LOOPBACK = '127.0.0.1';

/** Ports that were free a moment ago (bound on port 0, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ host: LOOPBACK, port: 0 }, () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Polls until `check` is true; fails with `what` after a generous bound (never a timing assertion). */
export async function waitUntil(check: () => boolean, what: string, boundMs = 5_000): Promise<void> {
  const deadline = performance.now() + boundMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${boundMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export function capturingLogger(): { logger: pino.Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => records.push(JSON.parse(line) as LogRecord) });
  return { logger, records };
}

/** Opens a raw TCP socket; resolves once connected. `closed` resolves when the other side or we close it. */
export function rawSocket(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: LOOPBACK, port });
    socket.on('error', () => {}); // a reset by the server is the expected outcome here
    socket.resume(); // read (and discard) replies, or a close by the server would go unnoticed
    const closed = new Promise<void>((resolveClosed) => socket.once('close', () => resolveClosed()));
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/** Cleanups run in reverse order of registration; failures are collected, not swallowed. */
export class Cleanup {
  private readonly steps: Array<() => unknown> = [];

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  }
}

/** A raw peer connection that reads frames: for playing a dialer (honest or not) by hand. */
export interface RawPeer {
  socket: net.Socket;
  closed: Promise<void>;
  /** Every frame the listener sent, decoded. */
  replies: unknown[];
  /** Every byte this side wrote, in order (for replaying a recorded connection). */
  written: Buffer[];
  write(bytes: Buffer): void;
}

export async function rawPeer(port: number): Promise<RawPeer> {
  const { socket, closed } = await rawSocket(port);
  socket.removeAllListeners('data');
  const replies: unknown[] = [];
  const decoder = new FrameDecoder(MAX_HANDSHAKE_FRAME_BYTES);
  socket.on('data', (chunk: Buffer) => {
    drainFrames(decoder, chunk, (value) => {
      replies.push(value);
      return true;
    });
  });
  const written: Buffer[] = [];
  return { socket, closed, replies, written, write: (bytes) => { written.push(bytes); socket.write(bytes); } };
}

/**
 * Plays an honest dialer's handshake on a raw connection: hello as `selfId` to `peerId`, then
 * the answer to the challenge, and waits for the acceptance. Returns the MAC of the frames
 * that may follow (null without a secret), or why the handshake failed.
 */
export async function rawHandshake(
  peer: RawPeer,
  who: { clusterId: string; selfId: string; peerId: string },
  secret: ClusterSecret,
): Promise<{ frameMac: FrameMac | null } | { reason: string }> {
  const dialerNonce = newNonce();
  peer.write(encodeFrame(helloFor({ clusterId: who.clusterId, dialerId: who.selfId, listenerId: who.peerId, dialerNonce })));
  await waitUntil(() => peer.replies.length >= 1, 'the listener answers the hello');
  const verdict = answerChallenge(peer.replies[0], { ...who, dialerNonce }, secret);
  if (!verdict.accepted) return { reason: verdict.reason };
  peer.write(encodeFrame(verdict.reply));
  await waitUntil(() => peer.replies.length >= 2, 'the listener answers the proof');
  const problem = acceptanceProblem(peer.replies[1]);
  return problem === null ? { frameMac: streamMacOf(verdict.transcript, secret) } : { reason: problem };
}

/** One frame as an authenticated dialer sends it: the frame, then its tag. */
export function macFrame(value: unknown, frameMac: FrameMac | null): Buffer {
  const frame = encodeFrame(value);
  return frameMac === null ? frame : Buffer.concat([frame, frameMac.next(frame)]);
}

/** An RpcServer on a free loopback port, closed by `cleanup`, with the lines it logged. */
export async function startRpcServer(cleanup: Cleanup, handler: RpcHandler, options: Partial<RpcServerOptions> = {}): Promise<{ server: RpcServer; port: number; logs: LogRecord[] }> {
  const { logger, records } = capturingLogger();
  const server = new RpcServer({ host: LOOPBACK, port: 0, logger, ...options }, handler);
  cleanup.add(() => server.close());
  const port = await server.start();
  return { server, port, logs: records };
}

/** A client connection to a loopback port, closed by `cleanup`. */
export async function connectRpc(cleanup: Cleanup, port: number, options?: RpcConnectionOptions): Promise<RpcConnection> {
  const connection = await RpcConnection.connect(LOOPBACK, port, options);
  cleanup.add(() => connection.close());
  return connection;
}

/** A promise the test resolves by hand, so handlers can be held in flight deterministically. */
export function gate(): { opened: Promise<void>; open: () => void } {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}
