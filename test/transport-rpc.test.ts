import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../src/transport/framing.js';
import { RpcConnection, type RpcConnectionOptions } from '../src/transport/rpc-connection.js';
import { RpcServer, type RpcHandler, type RpcServerOptions } from '../src/transport/rpc-server.js';
import { LmqError, type ErrorCode } from '../src/util/errors.js';
import { Cleanup, connectRpc, freePorts, gate, LOOPBACK, rawSocket, startRpcServer, waitUntil } from './transport-helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());
const startServer = (handler: RpcHandler, options: Partial<RpcServerOptions> = {}) => startRpcServer(cleanup, handler, options);
const connect = (port: number, options?: RpcConnectionOptions) => connectRpc(cleanup, port, options);

const TIMEOUT_MS = 5_000;

async function rejectionOf(promise: Promise<unknown>): Promise<LmqError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    return error as LmqError;
  }
  throw new Error('expected a rejection');
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<LmqError> {
  const error = await rejectionOf(promise);
  expect(error.code).toBe(code);
  return error;
}

const echo: RpcHandler = async (body) => body;

describe('rpc – request and response', () => {
  it('echoes a body, binary included', async () => {
    const { port } = await startServer(echo);
    const connection = await connect(port);
    const body = { op: 'produce', payload: new Uint8Array([0, 1, 254, 255]), keys: ['a'] };
    const reply = (await connection.request(body, TIMEOUT_MS)) as typeof body;
    expect(reply.op).toBe('produce');
    expect(reply.payload).toBeInstanceOf(Uint8Array);
    expect([...reply.payload]).toEqual([0, 1, 254, 255]);
  });

  it('matches many concurrent responses, finishing out of order, to their requests', async () => {
    let running = 0;
    let maxRunning = 0;
    const { port } = await startServer(async (body) => {
      const { n } = body as { n: number };
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((resolve) => setTimeout(resolve, (n * 7) % 13)); // deliberately out of order
      running -= 1;
      return { doubled: n * 2 };
    });
    const connection = await connect(port);
    const count = 200;
    const replies = await Promise.all(Array.from({ length: count }, (_, n) => connection.request({ n }, TIMEOUT_MS)));
    expect(replies).toEqual(Array.from({ length: count }, (_, n) => ({ doubled: n * 2 })));
    expect(maxRunning).toBeGreaterThan(1);
    expect(connection.inflightRequests).toBe(0);
  });

  it('re-throws a handler LmqError with its code, message and details', async () => {
    const { port } = await startServer(async () => {
      throw new LmqError('LMQ_NOT_LEADER', 'node n2 is not the leader; retry on n1', { leaderHint: 'n1' });
    });
    const connection = await connect(port);
    const error = await expectCode(connection.request({}, TIMEOUT_MS), 'LMQ_NOT_LEADER');
    expect(error.message).toBe('node n2 is not the leader; retry on n1');
    expect(error.details).toEqual({ leaderHint: 'n1' });
    expect(error.retriable).toBe(true);
  });

  it('turns any other handler failure, sync or async, into a logged internal error', async () => {
    const { port, logs } = await startServer(((body: unknown) => {
      if ((body as { sync: boolean }).sync) throw new TypeError('boom sync');
      return Promise.reject(new Error('boom async'));
    }) as RpcHandler);
    const connection = await connect(port);
    const asyncError = await expectCode(connection.request({ sync: false }, TIMEOUT_MS), 'LMQ_UNAVAILABLE');
    expect(asyncError.message).toMatch(/internal error in request handler: boom async/);
    await expectCode(connection.request({ sync: true }, TIMEOUT_MS), 'LMQ_UNAVAILABLE');
    expect(logs.filter((r) => r.msg === 'request handler failed')).toHaveLength(2);
    expect(await connection.request({ sync: false }, TIMEOUT_MS).catch(() => 'still served')).toBe('still served');
  });

  it('refuses a request over maxFrameBytes locally and a response over it with LMQ_BAD_INPUT', async () => {
    const { port } = await startServer(async () => new Uint8Array(4096), { maxFrameBytes: 1024 });
    const connection = await connect(port, { maxFrameBytes: 1024 });
    await expectCode(connection.request({ blob: new Uint8Array(2048) }, TIMEOUT_MS), 'LMQ_BAD_INPUT');
    const error = await expectCode(connection.request({}, TIMEOUT_MS), 'LMQ_BAD_INPUT');
    expect(error.message).toMatch(/exceeds maxFrameBytes 1024/);
  });
});

describe('rpc – failures', () => {
  it('times out with an indeterminate LMQ_TIMEOUT, and the connection stays usable', async () => {
    const held = gate();
    cleanup.add(() => held.open());
    const { port } = await startServer(async (body) => {
      if ((body as { hold: boolean }).hold) await held.opened;
      return 'done';
    });
    const connection = await connect(port);
    const error = await expectCode(connection.request({ hold: true }, 50), 'LMQ_TIMEOUT');
    expect(error.indeterminate).toBe(true);
    expect(await connection.request({ hold: false }, TIMEOUT_MS)).toBe('done');
    held.open(); // the late response for the timed-out request is ignored
    expect(await connection.request({ hold: false }, TIMEOUT_MS)).toBe('done');
  });

  it('rejects in-flight requests with LMQ_UNAVAILABLE when the server closes mid-request', async () => {
    const held = gate();
    cleanup.add(() => held.open());
    let started = 0;
    const { server, port } = await startServer(async () => {
      started += 1;
      await held.opened;
    }, { closeGracePeriodMs: 100 });
    const connection = await connect(port);
    const closeReasons: LmqError[] = [];
    connection.onClose((reason) => closeReasons.push(reason));
    const inFlight = expectCode(connection.request({}, TIMEOUT_MS), 'LMQ_UNAVAILABLE');
    await waitUntil(() => started === 1, 'handler running');
    await server.close();
    const error = await inFlight;
    expect(error.indeterminate).toBe(true);
    expect(closeReasons).toHaveLength(1);
    // A request on the closed connection is never written: its outcome is known.
    const unsent = await expectCode(connection.request({}, TIMEOUT_MS), 'LMQ_UNAVAILABLE');
    expect(unsent.indeterminate).toBe(false);
    expect(unsent.details).toMatchObject({ sent: false });
  });

  it('lets in-flight handlers finish within the grace period on close, and refuses new requests meanwhile', async () => {
    const held = gate();
    cleanup.add(() => held.open());
    let started = 0;
    const { server, port } = await startServer(async (body) => {
      started += 1;
      return (body as { hold: boolean }).hold ? held.opened.then(() => 'finished') : 'quick';
    }, { closeGracePeriodMs: 5_000 });
    const connection = await connect(port);
    const slow = connection.request({ hold: true }, TIMEOUT_MS);
    await waitUntil(() => started === 1, 'handler running');
    const closing = server.close();
    const refused = await expectCode(connection.request({ hold: false }, TIMEOUT_MS), 'LMQ_UNAVAILABLE');
    expect(refused.indeterminate).toBe(false); // refused before its handler ran
    expect(started).toBe(1);
    held.open();
    expect(await slow).toBe('finished');
    await closing;
  });

  it('does not keep listening when closed while still starting', async () => {
    const server = new RpcServer({ host: LOOPBACK, port: 0 }, echo);
    cleanup.add(() => server.close());
    const starting = server.start();
    await server.close();
    const port = await starting;
    await expectCode(RpcConnection.connect(LOOPBACK, port, { connectTimeoutMs: 2_000 }), 'LMQ_UNAVAILABLE');
  });

  it('fails to connect to a closed port with LMQ_UNAVAILABLE', async () => {
    const [port] = await freePorts(1);
    const error = await expectCode(RpcConnection.connect(LOOPBACK, port as number, { connectTimeoutMs: 2_000 }), 'LMQ_UNAVAILABLE');
    expect(error.message).toMatch(/cannot connect to 127\.0\.0\.1:\d+: ECONNREFUSED/);
    expect(error.indeterminate).toBe(false); // nothing was sent
    expect(error.retriable).toBe(true);
  });

  it('answers LMQ_OVERLOADED beyond maxInflightPerConnection', async () => {
    const held = gate();
    cleanup.add(() => held.open());
    const { port } = await startServer(async () => held.opened.then(() => 'ok'), { maxInflightPerConnection: 2 });
    const connection = await connect(port);
    const first = connection.request({}, TIMEOUT_MS);
    const second = connection.request({}, TIMEOUT_MS);
    await expectCode(connection.request({}, TIMEOUT_MS), 'LMQ_OVERLOADED');
    held.open();
    expect(await Promise.all([first, second])).toEqual(['ok', 'ok']);
  });

  it('at maxConnections, a new connection evicts one never served rather than being refused', async () => {
    const { server, port } = await startServer(echo, { maxConnections: 2 });
    const served = await connect(port);
    expect(await served.request('a', TIMEOUT_MS)).toBe('a');
    const silent = await rawSocket(port);
    await waitUntil(() => server.connectionCount === 2, 'both connections are accepted');
    const third = await connect(port);
    await silent.closed;
    expect(await third.request('c', TIMEOUT_MS)).toBe('c');
    expect(await served.request('b', TIMEOUT_MS)).toBe('b');
    expect(server.connectionCount).toBe(2);
  });

  it('closes only the connection that sends garbage, oversized headers or a malformed request', async () => {
    // One line per connection here; rate limiting has its own test (transport-hygiene).
    const { port, logs } = await startServer(echo, { maxFrameBytes: 64 * 1024, warnIntervalMs: 0 });
    const before = await connect(port);
    const garbage = await rawSocket(port);
    garbage.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const oversized = await rawSocket(port);
    oversized.socket.write(Buffer.from([0x7f, 0xff, 0xff, 0xff]));
    const malformed = await rawSocket(port);
    malformed.socket.write(encodeFrame({ id: 'not-a-number', body: 1 }));
    await Promise.all([garbage.closed, oversized.closed, malformed.closed]);
    const after = await connect(port);
    expect(await before.request('before', TIMEOUT_MS)).toBe('before');
    expect(await after.request('after', TIMEOUT_MS)).toBe('after');
    expect(logs.filter((r) => r.msg === 'closing client connection: bad frame')).toHaveLength(2);
    expect(logs.filter((r) => r.msg === 'closing client connection: protocol violation')).toHaveLength(1);
  });
});
