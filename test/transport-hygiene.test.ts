// Connection hygiene on the client port (issue 14): every client shares 127.0.0.1, so the
// server's limits are per connection, never per address. Real TCP on loopback against a real
// RpcServer; the bounds are shortened so each test takes about a second.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder } from '../src/transport/framing.js';
import { type RpcHandler, type RpcServerOptions } from '../src/transport/rpc-server.js';
import { RateLimitedLog } from '../src/util/rate-limited-log.js';
import { capturingLogger, Cleanup, connectRpc, gate, rawSocket, startRpcServer, waitUntil } from './transport-helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());
const startServer = (handler: RpcHandler, options: Partial<RpcServerOptions> = {}) => startRpcServer(cleanup, handler, options);
const connect = (port: number) => connectRpc(cleanup, port);

const TIMEOUT_MS = 5_000;
const MIB = 1024 * 1024;

const echo: RpcHandler = async (body) => body;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('client port – eviction at maxConnections', () => {
  it('evicts an idle connection, never one with a request in flight, when an idle one exists', async () => {
    const held = gate();
    cleanup.add(() => held.open());
    const { server, port } = await startServer(async (body) => (body === 'hold' ? held.opened.then(() => 'held') : body), { maxConnections: 2 });
    const busy = await connect(port);
    const longPoll = busy.request('hold', TIMEOUT_MS);
    const idle = await connect(port);
    expect(await idle.request('x', TIMEOUT_MS)).toBe('x'); // served, then idle — yet still the one to go
    let idleClosed = false;
    idle.onClose(() => (idleClosed = true));
    const newcomer = await connect(port);
    expect(await newcomer.request('new', TIMEOUT_MS)).toBe('new');
    await waitUntil(() => idleClosed, 'the idle connection is evicted');
    held.open();
    expect(await longPoll).toBe('held');
    expect(server.connectionCount).toBe(2);
  });
});

describe('client port – partial frames', () => {
  it('closes a connection whose frame is begun and not finished within partialFrameTimeoutMs, and only that one', async () => {
    const { port, logs } = await startServer(echo, { partialFrameTimeoutMs: 300 });
    const oneHeaderByte = await rawSocket(port);
    oneHeaderByte.socket.write(Buffer.from([0]));
    const halfBody = await rawSocket(port);
    halfBody.socket.write(encodeFrame({ id: 1, body: 'x'.repeat(1000) }).subarray(0, 500));
    const healthy = await connect(port);
    const startedMs = performance.now();
    // A client that keeps completing frames in small pieces is never cut, however long it goes on.
    for (let i = 0; performance.now() - startedMs < 900; i++) expect(await healthy.request(i, TIMEOUT_MS)).toBe(i);
    await Promise.all([oneHeaderByte.closed, halfBody.closed]);
    expect(await healthy.request('still', TIMEOUT_MS)).toBe('still');
    expect(logs.filter((r) => r.msg === 'closing client connection: a frame was begun and not finished in time').length).toBeGreaterThanOrEqual(1);
  });
});

describe('client port – idle timeout', () => {
  it('closes a silent connection, keeps one whose long poll is running and one that keeps talking', async () => {
    const held = gate();
    cleanup.add(() => held.open());
    const { server, port } = await startServer(async (body) => (body === 'poll' ? held.opened.then(() => 'polled') : body), { idleTimeoutMs: 400 });
    const silent = await rawSocket(port);
    const polling = await connect(port);
    const poll = polling.request('poll', TIMEOUT_MS);
    const talking = await connect(port);
    const startedMs = performance.now();
    while (performance.now() - startedMs < 1_200) {
      expect(await talking.request('beat', TIMEOUT_MS)).toBe('beat');
      await sleep(100);
    }
    await silent.closed;
    held.open();
    expect(await poll).toBe('polled');
    expect(server.connectionCount).toBe(2);
  });
});

describe('client port – reply budget', () => {
  it('builds no more replies than the budget while the client does not read, and all of them once it does', async () => {
    let built = 0;
    const replyBytes = MIB;
    const { port } = await startServer(async (_body, context) => {
      await context.reserveReplyBytes(replyBytes);
      built += 1;
      return Buffer.alloc(replyBytes);
    }, { maxReplyBytesPerConnection: 4 * MIB });
    const { socket } = await rawSocket(port);
    socket.pause(); // never reads: what a hostile client pipelining large pulls does
    const requests = 64;
    socket.write(Buffer.concat(Array.from({ length: requests }, (_, id) => encodeFrame({ id, body: null }))));
    await waitUntil(() => built >= 4, 'the first replies are built');
    await sleep(500);
    // What is built is at most the budget plus what the kernel's socket buffers took off the
    // server's hands (a few MiB on loopback) — far below the 64 the client asked for.
    expect(built).toBeLessThan(requests / 2);
    const decoder = new FrameDecoder(16 * MIB);
    let answered = 0;
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      while (decoder.next() !== undefined) answered += 1;
    });
    socket.resume();
    await waitUntil(() => answered === requests, 'every reply arrives once the client reads', 10_000);
    expect(built).toBe(requests);
  });
});

describe('rate-limited warnings', () => {
  it('writes one line per reason per interval, then one line with how many were suppressed', async () => {
    const { logger, records } = capturingLogger();
    let nowMs = 0;
    const log = new RateLimitedLog(logger, 10_000, () => nowMs);
    for (let i = 0; i < 100; i++) log.warn('bad-frame', { connection: i }, 'closing client connection: bad frame');
    log.warn('idle', {}, 'closing client connection: idle');
    expect(records.map((r) => r.msg)).toEqual(['closing client connection: bad frame', 'closing client connection: idle']);
    expect(log.suppressedCount('bad-frame')).toBe(99);
    nowMs = 10_000;
    log.warn('bad-frame', { connection: 100 }, 'closing client connection: bad frame');
    expect(records).toHaveLength(4);
    // The count comes first, with the last suppressed line's fields; then the new line.
    expect(records[2]).toMatchObject({ reason: 'bad-frame', connection: 99, suppressed: 99, suppressedOverMs: 10_000 });
    expect(pino.levels.labels[records[2]!.level]).toBe('warn');
    expect(records[3]).toMatchObject({ reason: 'bad-frame', connection: 100 });
    expect(records[3]!.suppressed).toBeUndefined();
  });

  it('reports the suppressed count when the interval ends even if the reason never recurs', async () => {
    const { logger, records } = capturingLogger();
    const log = new RateLimitedLog(logger, 50);
    for (let i = 0; i < 3; i++) log.warn('evicted', { connection: i }, 'evicting');
    expect(records).toHaveLength(1);
    await waitUntil(() => records.length === 2, 'the end-of-interval line is written');
    expect(records[1]).toMatchObject({ reason: 'evicted', connection: 2, suppressed: 2, msg: 'evicting (2 more like it suppressed)' });
  });
});
