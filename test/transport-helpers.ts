// Shared helpers for the transport tests: free ports, polling with a generous bound, a pino
// logger whose records the test can inspect, raw sockets for sending hostile bytes, and a
// cleanup list that afterEach drains even when a test fails.

import net from 'node:net';
import pino from 'pino';

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
