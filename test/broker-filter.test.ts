import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrokerCommand, ProduceMessage } from '../src/broker/commands.js';
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import { compileFilter, type SubscriptionFilter, tagHash } from '../src/filter/index.js';
import { LIMITS } from '../src/protocol/index.js';
import { bytes, MemoryLog, tempDir } from './broker-helpers.js';

let temp: ReturnType<typeof tempDir>;
let log: MemoryLog;
let machine: BrokerStateMachine;
let seq = 0;

beforeEach(() => {
  temp = tempDir('lmq-broker-filter-');
  log = new MemoryLog();
  seq = 0;
  machine = BrokerStateMachine.open({ dir: temp.dir, log });
  apply({ kind: 'createTopic', topic: 'orders', queues: 1 });
});

afterEach(async () => {
  await machine.close();
  temp.cleanup();
});

function apply(command: BrokerCommand): void {
  machine.apply([log.append(command)]);
}

/** One produce entry per up to maxMessagesPerProduce messages, offsets from the queue's end. */
function produce(messages: Omit<ProduceMessage, 'msgId' | 'topic' | 'queueId' | 'body'>[]): void {
  for (let i = 0; i < messages.length; i += LIMITS.maxMessagesPerProduce) {
    const batch = messages.slice(i, i + LIMITS.maxMessagesPerProduce).map((m, k) => ({ msgId: `m-${seq}-${k}`, topic: 'orders', queueId: 0, body: bytes(`body-${i + k}`), ...m }));
    apply({ kind: 'produce', producerId: 'p', seq: ++seq, timestampMs: 1000, messages: batch });
  }
}

function read(filter: SubscriptionFilter, fromOffset = 0, maxMessages = 100, maxBytes = 1 << 20) {
  log.reads = 0;
  const answer = machine.readMatching('orders', 0, fromOffset, maxMessages, maxBytes, compileFilter(filter));
  return { ...answer, offsets: answer.messages.map((m) => m.offset), logReads: log.reads };
}

const tagged = (tags: (string | undefined)[]) => tags.map((tag) => (tag === undefined ? {} : { tag }));

describe('broker filter – tag filters skip by the consume queue record', () => {
  it('passes a run of non-matching messages without reading the commit log', () => {
    produce(tagged(['B', 'C', undefined, 'B', 'B']));
    const answer = read({ type: 'tag', expression: 'A' });
    expect(answer.offsets).toEqual([]);
    expect(answer.nextBeginOffset).toBe(5);
    expect(answer.scanBounded).toBe(false);
    expect(answer.logReads).toBe(0);
  });

  it('answers the matches in offset order, nextBeginOffset past the skipped ones', () => {
    produce(tagged(['B', 'A', 'C', 'B', 'A', 'B', 'B']));
    const all = read({ type: 'tag', expression: 'A || C' });
    expect(all.offsets).toEqual([1, 2, 4]);
    expect(all.messages.map((m) => m.tag)).toEqual(['A', 'C', 'A']);
    expect(all.nextBeginOffset).toBe(7);
    expect(all.logReads).toBeGreaterThan(0);
    // Bounded by maxMessages: the next pull starts at the first match not taken.
    const two = read({ type: 'tag', expression: 'A || C' }, 0, 2);
    expect(two.offsets).toEqual([1, 2]);
    expect(two.nextBeginOffset).toBe(4);
    expect(read({ type: 'tag', expression: 'A || C' }, two.nextBeginOffset).offsets).toEqual([4]);
    // Bounded by bytes: the first match always comes, the next one that does not fit waits.
    const small = read({ type: 'tag', expression: 'A || C' }, 0, 100, 1);
    expect(small.offsets).toEqual([1]);
    expect(small.nextBeginOffset).toBe(2);
  });

  it('drops a message whose tag only shares the hash of a subscribed tag, once read', () => {
    const [wanted, colliding] = hashCollision();
    expect(tagHash(wanted)).toBe(tagHash(colliding));
    produce(tagged([colliding, wanted, colliding]));
    const answer = read({ type: 'tag', expression: wanted });
    expect(answer.offsets).toEqual([1]);
    expect(answer.nextBeginOffset).toBe(3);
    expect(answer.logReads).toBeGreaterThan(0); // the colliding ones had to be read to tell
  });

  it('stops at maxPullScanRecords with the records left for the next pull', () => {
    const count = LIMITS.maxPullScanRecords + 10;
    produce(tagged([...Array<string>(count - 1).fill('B'), 'A']));
    const first = read({ type: 'tag', expression: 'A' });
    expect(first.offsets).toEqual([]);
    expect(first.nextBeginOffset).toBe(LIMITS.maxPullScanRecords);
    expect(first.scanBounded).toBe(true);
    const second = read({ type: 'tag', expression: 'A' }, first.nextBeginOffset);
    expect(second.offsets).toEqual([count - 1]);
    expect(second.nextBeginOffset).toBe(count);
    expect(second.scanBounded).toBe(false);
  });

  it('keeps the tag hash in the consume queue through a rebuild from the log', async () => {
    produce(tagged(['A', 'B', 'A']));
    await machine.close();
    rmSync(temp.dir, { recursive: true, force: true });
    machine = BrokerStateMachine.open({ dir: temp.dir, log });
    machine.apply(log.all());
    expect(read({ type: 'tag', expression: 'A' }).offsets).toEqual([0, 2]);
  });
});

describe('broker filter – SQL92 filters read the properties', () => {
  it('answers the messages whose properties match, passing the others', () => {
    produce([{ properties: { a: '1' } }, { properties: { a: '7', b: 'abc' } }, {}, { properties: { a: 'x' } }, { properties: { a: '9', b: 'abc' } }]);
    const answer = read({ type: 'sql', expression: "a > 5 AND b = 'abc'" });
    expect(answer.offsets).toEqual([1, 4]);
    expect(answer.nextBeginOffset).toBe(5);
    expect(read({ type: 'sql', expression: 'a IS NULL' }).offsets).toEqual([2]);
  });

  it('answers nothing and passes the whole queue when nothing matches', () => {
    produce([{ properties: { a: '1' } }, { properties: { a: '2' } }]);
    const answer = read({ type: 'sql', expression: 'a > 5' });
    expect(answer.offsets).toEqual([]);
    expect(answer.nextBeginOffset).toBe(2);
    // From the end of the queue: nothing to scan, the position stays.
    expect(read({ type: 'sql', expression: 'a > 5' }, 2).nextBeginOffset).toBe(2);
  });
});

/** Two different tags with one FNV-1a hash (found by search: 32-bit hashes collide within ~2^16 tries). */
function hashCollision(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const tag = `t${i}`;
    const hash = tagHash(tag);
    const other = seen.get(hash);
    if (other !== undefined) return [other, tag];
    seen.set(hash, tag);
  }
}
