import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BrokerCommand, decodeCommand, type ProduceMessage } from '../src/broker/commands.js';
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import { EntryType } from '../src/raft/types.js';
import { applyRange, dumpState, MemoryLog, tempDir } from './broker-helpers.js';
import { DEDUP_WINDOW, KEYS, MAX_PRODUCERS, opWithBatchesAndDelays, toCommands } from './broker-workload.js';

// The leader applies the commands it proposed without decoding their entries again
// (rememberProposal): its state and results must be those of a node that decodes them.

/** The command as the leader holds it: the decoded shape, but bodies are Buffers (views of the request). */
function asProposed(command: BrokerCommand): BrokerCommand {
  const withBufferBody = (message: ProduceMessage): ProduceMessage => ({ ...message, body: Buffer.from(message.body) });
  switch (command.kind) {
    case 'produce':
      return { ...command, messages: command.messages.map(withBufferBody) };
    case 'produceBatch':
      return { ...command, produces: command.produces.map((produce) => ({ ...produce, messages: produce.messages.map(withBufferBody) })) };
    default:
      return command;
  }
}

describe('broker state machine – its own proposals', () => {
  it('applies a remembered command exactly as it would decode its entry: same results, digest and reads', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opWithBatchesAndDelays, { minLength: 10, maxLength: 60 }), fc.integer({ min: 1, max: 6 }), async (ops, batchEntries) => {
        const temp = tempDir('lmq-own-proposals-');
        const log = new MemoryLog();
        const options = { log, maxProducers: MAX_PRODUCERS, dedupWindowPerProducer: DEDUP_WINDOW };
        const decoding = BrokerStateMachine.open({ dir: join(temp.dir, 'decoding'), ...options });
        const leader = BrokerStateMachine.open({ dir: join(temp.dir, 'leader'), ...options });
        try {
          const commands = toCommands(ops);
          for (const command of commands) {
            const entry = log.append(command);
            if (entry.type === EntryType.Normal) leader.rememberProposal(entry.data, asProposed(decodeCommand(entry.data)));
          }
          const expected = applyRange(decoding, log, 1, commands.length, batchEntries);
          expect(applyRange(leader, log, 1, commands.length, batchEntries)).toEqual(expected);
          expect(leader.stateDigest()).toBe(decoding.stateDigest());
          const keys = new Map(decoding.topics().map(({ topic }) => [topic, new Set(KEYS)]));
          expect(dumpState(leader, keys)).toEqual(dumpState(decoding, keys));
        } finally {
          await Promise.all([decoding.close(), leader.close()]);
          temp.cleanup();
        }
      }),
      { numRuns: 30 },
    );
  });

  it('applies the remembered command, not a decoding of the entry', async () => {
    const temp = tempDir('lmq-own-proposals-');
    const log = new MemoryLog();
    const machine = BrokerStateMachine.open({ dir: join(temp.dir, 'm'), log });
    try {
      const created = log.append({ kind: 'createTopic', topic: 't', queues: 1 });
      // The entry says "t"; the remembered command says "u": what apply creates shows which it used.
      machine.rememberProposal(created.data, { kind: 'createTopic', topic: 'u', queues: 2 });
      machine.apply([created]);
      expect(machine.topics()).toEqual([{ topic: 'u', queues: 2 }]);
      const again = log.append({ kind: 'createTopic', topic: 't', queues: 1 });
      machine.apply([again]); // not remembered: decoded
      expect(machine.topics()).toEqual([{ topic: 't', queues: 1 }, { topic: 'u', queues: 2 }]);
    } finally {
      await machine.close();
      temp.cleanup();
    }
  });
});
