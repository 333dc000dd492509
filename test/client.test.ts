import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../src/client/client.js';
import { RpcConnection } from '../src/transport/rpc-connection.js';
import { RpcServer } from '../src/transport/rpc-server.js';
import { isLmqError } from '../src/util/errors.js';

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
      order.push((body as { n: number }).n);
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
    const calls = Array.from({ length: 600 }, (_, n) => client.call({ n }));
    const answers = await Promise.all(calls);
    expect(answers).toEqual(Array.from({ length: 600 }, (_, n) => ({ n })));
    expect(refused).toBe(0);
    expect(maxSeen).toBeLessThanOrEqual(DEFAULT_CLIENT_OPTIONS.maxInflightRequests);
    expect(maxSeen).toBeGreaterThan(1);
    expect(order).toEqual(Array.from({ length: 600 }, (_, n) => n));
  });
});
