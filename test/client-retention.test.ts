import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerCommand } from '../src/broker/commands.js';
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import { type ClientConnection, DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../src/client/client.js';
import { PullConsumer } from '../src/client/consumer.js';
import type { Request } from '../src/protocol/index.js';
import { bytes, MemoryLog, tempDir } from './broker-helpers.js';

// The consumer side of retention: a consumer whose position (or group offset) fell below a
// queue's minOffset moves on to minOffset — no error loop. The client talks, through its
// Connector port, to a real state machine (real lmdb) answering as the broker service does.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function brokerAndClient() {
  const temp = tempDir('lmq-client-retention-');
  const log = new MemoryLog();
  const machine = BrokerStateMachine.open({ dir: temp.dir, log });
  const run = (command: BrokerCommand) => machine.apply([log.append(command)])[0]!;
  /** The offsets of every commit the client sent, as sent (the broker clamps them). */
  const commits: number[][] = [];
  const answer = (request: Request): unknown => {
    switch (request.op) {
      case 'route':
        return { topic: request.topic, queues: machine.topic(request.topic)!.queues };
      case 'queryOffsets':
        return { offsets: request.queues.map((q) => ({ ...q, offset: machine.committedOffset(request.group, q.topic, q.queueId) ?? null, ...machine.queueRange(q.topic, q.queueId) })) };
      case 'pull': {
        const read = machine.readFrom(request.topic, request.queueId, request.offset, request.maxMessages, request.maxBytes);
        const nextBeginOffset = (read.messages.at(-1)?.offset ?? read.startOffset - 1) + 1;
        return { ...read, nextBeginOffset, ...machine.queueRange(request.topic, request.queueId) };
      }
      case 'commitOffsets':
        commits.push(request.offsets.map((o) => o.offset));
        run({ kind: 'commitOffsets', group: request.group, offsets: request.offsets });
        return { ok: true };
      default:
        throw new Error(`op ${request.op} is not served here`);
    }
  };
  const connection: ClientConnection = { request: async (body) => answer(body as Request), close: () => undefined, onClose: () => undefined };
  const client = new LedgerClient({ ...DEFAULT_CLIENT_OPTIONS, nodes: [{ id: 'n1', host: '127.0.0.1', clientPort: 1 }] }, async () => connection);
  cleanups.push(async () => {
    client.close();
    await machine.close();
    temp.cleanup();
  });
  return { machine, run, client, commits };
}

describe('client – consuming across retention', () => {
  it('a consumer whose position was deleted moves to minOffset, and its commit moves the group there', async () => {
    const { machine, run, client, commits } = brokerAndClient();
    run({ kind: 'createTopic', topic: 't', queues: 1 });
    const produce = (seq: number) => run({ kind: 'produce', producerId: 'p', seq, timestampMs: 1, messages: [{ msgId: `m${seq}`, topic: 't', queueId: 0, body: bytes(`b${seq}`) }] });
    for (let seq = 1; seq <= 3; seq++) produce(seq); // entries 2..4, offsets 0..2
    const consumer = new PullConsumer(client, { topic: 't', group: 'g', from: 'first', pollWaitMs: 0, maxMessagesPerPull: 1, maxBytesPerPull: 1 << 20 });
    await consumer.start();
    expect((await consumer.poll(false)).map((m) => m.offset)).toEqual([0]);
    await consumer.commit();
    run({ kind: 'truncateLog', firstIndex: 5 }); // entry 5: offsets 0..2 are gone
    expect(machine.queueRange('t', 0)).toEqual({ minOffset: 3, nextOffset: 3 });
    // Nothing to read: the reply's startOffset moves the position, and the commit records it.
    expect(await consumer.poll(false)).toEqual([]);
    await consumer.commit();
    expect(commits).toEqual([[1], [3]]);
    expect(machine.committedOffset('g', 't', 0)).toBe(3);
    produce(4);
    expect((await consumer.poll(false)).map((m) => [m.offset, m.msgId])).toEqual([[3, 'm4']]);
  });

  it('a group whose committed offset is below minOffset, and --from first, start at minOffset', async () => {
    const { run, client } = brokerAndClient();
    run({ kind: 'createTopic', topic: 't', queues: 1 });
    for (let seq = 1; seq <= 4; seq++) run({ kind: 'produce', producerId: 'p', seq, timestampMs: 1, messages: [{ msgId: `m${seq}`, topic: 't', queueId: 0, body: bytes('x') }] });
    run({ kind: 'commitOffsets', group: 'old', offsets: [{ topic: 't', queueId: 0, offset: 1 }] });
    run({ kind: 'truncateLog', firstIndex: 5 }); // offsets 0..2 gone
    for (const group of ['old', 'new']) {
      const consumer = new PullConsumer(client, { topic: 't', group, from: 'first', pollWaitMs: 0, maxMessagesPerPull: 10, maxBytesPerPull: 1 << 20 });
      await consumer.start();
      expect((await consumer.poll(false)).map((m) => m.offset)).toEqual([3]);
    }
  });
});
