import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../src/client/client.js';
import { RpcConnection } from '../src/transport/rpc-connection.js';
import { RpcServer } from '../src/transport/rpc-server.js';
import { LmqError, isLmqError } from '../src/util/errors.js';
import { Producer } from '../src/client/producer.js';
import { parseRequest } from '../src/broker/requests.js';
import { consumed } from '../src/client/consumer.js';
import { freePorts } from './transport-helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('client – requests in flight', () => {
  it('keeps at most maxInflightRequests in flight, serving the rest in call order, never overloading the server', async () => {
    let inFlight = 0;
    let maxSeen = 0;
    const order: number[] = [];
    const server = new RpcServer({ host: '127.0.0.1', port: 0 }, async (body) => {
      order.push(Number((body as { topic: string }).topic.slice(1)));
      maxSeen = Math.max(maxSeen, ++inFlight);
      await sleep(5);
      inFlight--;
      return body;
    });
    const port = await server.start();
    cleanups.push(() => server.close());
    let refused = 0;
    const client = new LedgerClient(
      { ...DEFAULT_CLIENT_OPTIONS, nodes: [{ id: 'n1', host: '127.0.0.1', clientPort: port }] },
      async (host, p, connectTimeoutMs) => {
        const connection = await RpcConnection.connect(host, p, { connectTimeoutMs });
        // Count the server's refusals as they come back on the real connection.
        return {
          request: (body: unknown, timeoutMs: number) => connection.request(body, timeoutMs).catch((error: unknown) => {
            if (isLmqError(error, 'LMQ_OVERLOADED')) refused++;
            throw error;
          }),
          close: () => connection.close(),
          onClose: (callback: () => void) => connection.onClose(callback),
        };
      },
    );
    cleanups.push(() => client.close());
    // The scripted server echoes each request; its topic carries the call's number.
    const calls = Array.from({ length: 600 }, (_, n) => client.call({ op: 'route', topic: `t${n}` }));
    const answers = await Promise.all(calls);
    expect(answers).toEqual(Array.from({ length: 600 }, (_, n) => ({ op: 'route', topic: `t${n}` })));
    expect(refused).toBe(0);
    expect(maxSeen).toBeLessThanOrEqual(DEFAULT_CLIENT_OPTIONS.maxInflightRequests);
    expect(maxSeen).toBeGreaterThan(1);
    expect(order).toEqual(Array.from({ length: 600 }, (_, n) => n));
  });
});

describe('producer – a session that ends', () => {
  it('stops the old session retrying and sends nothing new until it has settled, so later sends cannot overtake it', async () => {
    // A scripted broker on a real RPC server: session A's seq 1 fails, so its seqs 2 and 3 can
    // only ever be refused as out of order (or, had seq 1's outcome been unknown, still be
    // stored); any later session is stored.
    const arrivals: { session: string; seq: number }[] = [];
    let firstSession: string | null = null;
    const server = new RpcServer({ host: '127.0.0.1', port: 0 }, async (body) => {
      // Parsed as the broker's edge parses it: the producer sends its messages encoded.
      const request = parseRequest(body) as { op: string; producerId: string; seq: number; messages: { msgId: string }[] };
      if (request.op === 'route') return { topic: 't', queues: 1 };
      firstSession ??= request.producerId;
      arrivals.push({ session: request.producerId, seq: request.seq });
      if (request.producerId === firstSession) {
        if (request.seq === 1) {
          await sleep(100);
          throw new LmqError('LMQ_BAD_INPUT', 'scripted: refused');
        }
        throw new LmqError('LMQ_OUT_OF_ORDER', 'scripted: seq 1 is missing', { expectedSeq: 1 });
      }
      return { offsets: request.messages.map((_, i) => request.seq * 10 + i), duplicate: false };
    });
    const port = await server.start();
    cleanups.push(() => server.close());
    const client = new LedgerClient({ ...DEFAULT_CLIENT_OPTIONS, nodes: [{ id: 'n1', host: '127.0.0.1', clientPort: port }] }, (host, p, connectTimeoutMs) => RpcConnection.connect(host, p, { connectTimeoutMs }));
    cleanups.push(() => client.close());
    const producer = new Producer(client, 5_000, { maxInflightRequests: 3, maxBatchMessages: 1 });

    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => producer.send('t', { body: Buffer.from(String(i)) })));

    expect(outcomes.slice(0, 3).map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect((outcomes[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'LMQ_BAD_INPUT' });
    // Every attempt of seqs 2 and 3 was refused as out of order: abandoned, they are known not stored.
    for (const o of outcomes.slice(1, 3)) expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'LMQ_UNAVAILABLE', indeterminate: false, details: { sent: false } });
    expect(outcomes.slice(3).map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const firstOfNewSession = arrivals.findIndex((a) => a.session !== firstSession);
    expect(firstOfNewSession).toBeGreaterThan(0);
    // Nothing of the old session reached the broker once the new one had started.
    expect(arrivals.slice(firstOfNewSession).every((a) => a.session !== firstSession)).toBe(true);
    expect(arrivals.slice(firstOfNewSession).map((a) => a.seq)).toEqual([1, 2, 3]);
  });
});


describe('producer – the form its messages travel in', () => {
  it('sends them encoded, and as maps only a delay level (the leader resolves it) or a string UTF-8 cannot carry', async () => {
    const forms: string[] = [];
    const server = new RpcServer({ host: '127.0.0.1', port: 0 }, async (body) => {
      const raw = body as { op: string; encoded?: unknown; messages?: unknown };
      if (raw.op === 'route') return { topic: 't', queues: 1 };
      forms.push(raw.encoded instanceof Uint8Array ? 'encoded' : Array.isArray(raw.messages) ? 'maps' : 'neither');
      const request = parseRequest(body) as { messages: unknown[] };
      return { offsets: request.messages.map((_, i) => i), duplicate: false };
    });
    const port = await server.start();
    cleanups.push(() => server.close());
    const client = new LedgerClient({ ...DEFAULT_CLIENT_OPTIONS, nodes: [{ id: 'n1', host: '127.0.0.1', clientPort: port }] }, (host, p, connectTimeoutMs) => RpcConnection.connect(host, p, { connectTimeoutMs }));
    cleanups.push(() => client.close());
    const producer = new Producer(client, 5_000, { maxInflightRequests: 1, maxBatchMessages: 1 });
    await producer.send('t', { body: Buffer.from('plain'), key: 'k', tag: 'x', properties: { a: '1' } });
    await producer.send('t', { body: Buffer.from('due'), deliverAtMs: Date.now() + 60_000 });
    await producer.send('t', { body: Buffer.from('level'), delayLevel: 2 });
    await producer.send('t', { body: Buffer.from('lone'), key: '\ud800' });
    expect(forms).toEqual(['encoded', 'encoded', 'maps', 'maps']);
    // A one-way send is checked before it goes, as nothing answers it.
    expect(() => producer.sendOneWay('t', -1, { body: Buffer.from('x') })).toThrow(/one-way message for topic "t" cannot be sent: queueId/);
    expect(forms).toHaveLength(4);
  });
});

describe('client – a failed call says whether it may have happened', () => {
  const clientOn = (port: number, timeoutMs: number) =>
    new LedgerClient({ ...DEFAULT_CLIENT_OPTIONS, nodes: [{ id: 'n1', host: '127.0.0.1', clientPort: port }], timeoutMs, requestTimeoutMs: 100 }, (host, p, connectTimeoutMs) => RpcConnection.connect(host, p, { connectTimeoutMs }));

  it('is determinate when no attempt was carried out: nothing listening, or every attempt refused', async () => {
    const [port] = await freePorts(1);
    const unreachable = clientOn(port!, 300);
    cleanups.push(() => unreachable.close());
    await expect(unreachable.call({ op: 'topics' })).rejects.toMatchObject({ code: 'LMQ_UNAVAILABLE', indeterminate: false, details: { sent: false } });

    const server = new RpcServer({ host: '127.0.0.1', port: 0 }, async () => {
      throw new LmqError('LMQ_NOT_LEADER', 'scripted: no leader known', { leader: null });
    });
    const refusing = clientOn(await server.start(), 300);
    cleanups.push(() => server.close(), () => refusing.close());
    const error = await refusing.call({ op: 'createTopic', topic: 't', queues: 1 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'LMQ_UNAVAILABLE', indeterminate: false });
    expect((error as LmqError).cause).toMatchObject({ code: 'LMQ_NOT_LEADER' });
  });

  it('is indeterminate when an attempt timed out: the broker may have carried it out', async () => {
    const held = new Promise<never>(() => undefined);
    const server = new RpcServer({ host: '127.0.0.1', port: 0, closeGracePeriodMs: 0 }, () => held);
    const client = clientOn(await server.start(), 300);
    cleanups.push(() => server.close(), () => client.close());
    const error = await client.call({ op: 'createTopic', topic: 't', queues: 1 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'LMQ_UNAVAILABLE', indeterminate: true });
    expect((error as LmqError).details).not.toHaveProperty('sent');
  });

  it('stays indeterminate when a retry after a timed-out attempt is refused: the first may have been carried out', async () => {
    let attempts = 0;
    const server = new RpcServer({ host: '127.0.0.1', port: 0, closeGracePeriodMs: 0 }, async () => {
      attempts += 1;
      // The first attempt outlives its 100 ms; the retry meets a leader that does not know the topic yet.
      if (attempts === 1) await sleep(400);
      throw new LmqError('LMQ_TOPIC_NOT_FOUND', 'scripted: topic "t" does not exist', { topic: 't' });
    });
    const client = clientOn(await server.start(), 2_000);
    cleanups.push(() => server.close(), () => client.close());
    const error = await client.call({ op: 'produce', producerId: 'p', seq: 1, messages: [{ msgId: 'm', topic: 't', queueId: 0, body: Buffer.from('x') }] }).catch((e: unknown) => e);
    expect(attempts).toBe(2);
    expect(error).toMatchObject({ code: 'LMQ_UNAVAILABLE', indeterminate: true });
    expect((error as LmqError).message).toContain('LMQ_TOPIC_NOT_FOUND: scripted: topic "t" does not exist');
    expect((error as LmqError).cause).toMatchObject({ code: 'LMQ_TOPIC_NOT_FOUND' });
    // A request that changes nothing stays the refusal it is.
    attempts = 0;
    await expect(client.call({ op: 'route', topic: 't' })).rejects.toMatchObject({ code: 'LMQ_TOPIC_NOT_FOUND', indeterminate: false });
    expect(attempts).toBe(2);
  });
});

describe('pull consumer – what a message carries', () => {
  const stored = { msgId: 'm1', topic: '%RETRY%g', queueId: 0, offset: 7, logIndex: 40, storeTimestampMs: 1_000, body: Buffer.from('b'), keys: ['k'], tag: 'T' };

  it('a retry copy names its redelivery count and origin; a delayed message its due time', () => {
    const origin = { msgId: 'm1', topic: 'orders', queueId: 2, offset: 5 };
    expect(consumed(0, { ...stored, reconsumeTimes: 3, origin, deliverAtMs: 900 })).toMatchObject({ queueId: 0, offset: 7, key: 'k', tag: 'T', reconsumeTimes: 3, origin, deliverAtMs: 900 });
  });

  it('an original is its first delivery, with no origin and no due time', () => {
    expect(consumed(0, { ...stored, topic: 'orders' })).toMatchObject({ reconsumeTimes: 0, origin: undefined, deliverAtMs: undefined });
  });
});
