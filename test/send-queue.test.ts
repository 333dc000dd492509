import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type PendingSend, SendQueue } from '../src/client/send-queue.js';

function send(callOrder: number, messageCount = 1): PendingSend {
  const messages = Array.from({ length: messageCount }, () => ({ body: new Uint8Array(1) }));
  return { topic: 't', messages, selector: 'roundRobin', explicitBatch: messageCount > 1, sizeBytes: messageCount, deadlineMs: Number.POSITIVE_INFINITY, callOrder, resolve: () => undefined, reject: () => undefined };
}

/** Takes every queued send, one run at a time. */
function drain(queue: SendQueue): number[] {
  const order: number[] = [];
  while (queue.head() !== undefined) order.push(...queue.takeRun({ maxMessages: 3, maxBytes: 1 << 20 }).map((s) => s.callOrder));
  return order;
}

describe('the producer send queue', () => {
  it('puts a refused request\'s sends back in call order, before the sends called after them', () => {
    const queue = new SendQueue(10, 100);
    for (let i = 0; i < 6; i++) queue.add(send(i));
    const first = queue.takeRun({ maxMessages: 2, maxBytes: 1 << 20 });
    const second = queue.takeRun({ maxMessages: 2, maxBytes: 1 << 20 });
    // Refusals may come back in any order; call order decides where each send goes.
    queue.putBack(second);
    queue.putBack(first);
    expect(queue.depth().queuedMessages).toBe(6);
    expect(drain(queue)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('keeps call order and every send through any mix of adds, runs and put-backs (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('add', 'take', 'putBack'), { maxLength: 60 }), fc.integer({ min: 1, max: 5 }), (steps, maxQueuedMessages) => {
        const queue = new SendQueue(maxQueuedMessages, 1000);
        const taken: PendingSend[][] = [];
        let added = 0;
        for (const step of steps) {
          if (step === 'add') queue.add(send(added++));
          else if (step === 'take' && queue.head() !== undefined) taken.push(queue.takeRun({ maxMessages: 2, maxBytes: 1 << 20 }));
          else if (step === 'putBack' && taken.length > 0) queue.putBack(taken.splice(taken.length - 1, 1)[0]!);
        }
        for (const run of taken.reverse()) queue.putBack(run);
        expect(drain(queue)).toEqual(Array.from({ length: added }, (_, i) => i));
        expect(queue.depth()).toEqual({ queuedMessages: 0, sendsWaitingForRoom: 0 });
      }),
      { seed: 17, numRuns: 300 },
    );
  });
});
