// Durations and deadlines run on the monotonic clock (issue 14): a wall-clock step — NTP, a VM
// resumed, an operator's `date -s` — must neither keep a dead consumer's queues assigned nor end
// (or stretch) a write's, a call's or a wait's deadline. Wall time stays only in what is stored
// (message timestamps). The step is made by replacing Date.now for this process, which runs a
// real one-node broker (its client port on 127.0.0.1) and the client.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type BrokerNode, startBrokerNode } from '../src/broker/server.js';
import { DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../src/client/client.js';
import { Producer } from '../src/client/producer.js';
import { tcpConnector } from '../src/client/tcp-connector.js';
import { parseConfig } from '../src/config/config.js';
import { until } from '../src/util/until.js';
import { freePorts } from './transport-helpers.js';

const HOUR_MS = 3_600_000;
const realNow = Date.now.bind(Date);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
let broker: BrokerNode;
let client: LedgerClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lmq-clock-'));
  const [raftPort, clientPort] = await freePorts(2);
  const config = parseConfig({
    clusterId: 'clock',
    nodes: [{ id: 'n1', host: '127.0.0.1', raftPort, clientPort, dataDir: join(dir, 'n1') }],
    flush: { mode: 'sync', intervalMs: 100 },
    quorum: 'majority',
  }, 'test');
  broker = await startBrokerNode(config, 'n1', pino({ level: 'silent' }));
  client = new LedgerClient({ ...DEFAULT_CLIENT_OPTIONS, nodes: config.nodes, timeoutMs: 10_000 }, tcpConnector);
  await until('n1 leads', async () => (await client.callNode('n1', { op: 'status' })).role === 'leader', 10_000);
  await client.call({ op: 'createTopic', topic: 't', queues: 4 });
}, 30_000);

afterEach(() => {
  vi.restoreAllMocks();
});

afterAll(async () => {
  client?.close();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const heartbeat = (consumerId: string) => client.call({ op: 'heartbeat', group: 'g', topic: 't', consumerId });

describe('monotonic clocks – group membership', () => {
  it('drops a silent consumer after its session even when the wall clock stepped back an hour', async () => {
    expect((await heartbeat('a')).queueIds).toEqual([0, 1, 2, 3]);
    expect((await heartbeat('b')).members).toBe(2);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() - HOUR_MS);
    // a keeps heartbeating (its session is 3 s); b has gone silent.
    for (let i = 0; i < 3; i++) {
      await sleep(1_200);
      await heartbeat('a');
    }
    expect(await heartbeat('a')).toMatchObject({ queueIds: [0, 1, 2, 3], members: 1 });
  }, 20_000);
});

/** From the second read of Date.now on, the wall clock is `stepMs` ahead: a step in the middle of whatever starts next. */
function stepWallClockAfterOneRead(stepMs: number): void {
  vi.restoreAllMocks();
  let reads = 0;
  vi.spyOn(Date, 'now').mockImplementation(() => realNow() + (reads++ === 0 ? 0 : stepMs));
}

describe('monotonic clocks – deadlines', () => {
  it('a producer send, a client call and until() keep their deadlines when the wall clock steps forward an hour mid-way', async () => {
    const producer = new Producer(client, 10_000);
    await producer.send('t', { body: Buffer.from('before the step') }); // routes known, connection open
    // On wall time, each deadline below would have passed at its first check.
    stepWallClockAfterOneRead(HOUR_MS);
    const sent = await producer.send('t', { body: Buffer.from('after the step') });
    expect(sent.offset).not.toBeNull();
    stepWallClockAfterOneRead(HOUR_MS);
    expect(await client.call({ op: 'route', topic: 't' })).toEqual({ topic: 't', queues: 4 });
    stepWallClockAfterOneRead(HOUR_MS);
    let probes = 0;
    expect(await until('the second probe', () => ++probes >= 2, 5_000, 10)).toBe(true);
    // Stored timestamps are wall time, and follow the step.
    vi.restoreAllMocks();
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + HOUR_MS);
    const late = await producer.send('t', { body: Buffer.from('stored after the step') });
    const [message] = (await client.call({ op: 'pull', topic: 't', queueId: late.queueId, offset: late.offset!, maxMessages: 1, maxBytes: 1024, waitMs: 0 })).messages;
    expect(message!.storeTimestampMs).toBeGreaterThan(realNow() + HOUR_MS / 2);
  }, 20_000);
});
