import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BrokerCommand, COMMAND_FORMAT_VERSION, decodeCommand, encodeCommand, encodeProduce, encodeProduceBatch, MAX_COMMAND_BYTES, produceBatchFits, type ProduceCommand, type ProduceMessage, topicNameProblem } from '../src/broker/commands.js';
import { LmqError } from '../src/util/errors.js';
import { Packr } from 'msgpackr';

const name = fc.stringMatching(/^[A-Za-z0-9%|_-]{1,20}$/);
const text = fc.string({ minLength: 1, maxLength: 20, unit: 'grapheme' }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s));
const queueId = fc.integer({ min: 0, max: 1023 });

const message: fc.Arbitrary<ProduceMessage> = fc.record(
  {
    msgId: text,
    topic: name,
    queueId,
    body: fc.uint8Array({ maxLength: 64 }),
    tag: text,
    keys: fc.array(text, { maxLength: 4 }),
    properties: fc.dictionary(text.filter((s) => s !== '__proto__'), fc.string({ maxLength: 10 }), { maxKeys: 4, noNullPrototype: true }),
  },
  { requiredKeys: ['msgId', 'topic', 'queueId', 'body'], noNullPrototype: true },
);

const position = fc.record({ topic: name, queueId, offset: fc.nat() }, { noNullPrototype: true });

const produce: fc.Arbitrary<ProduceCommand> = fc.record({
  kind: fc.constant('produce' as const),
  producerId: text,
  seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  timestampMs: fc.nat(),
  messages: fc.array(message, { minLength: 1, maxLength: 5 }),
  routedQueues: fc.integer({ min: 1, max: 1024 }),
}, { requiredKeys: ['kind', 'producerId', 'seq', 'timestampMs', 'messages'], noNullPrototype: true });
// Up to 20 produces: past 15 the array's msgpack header takes three bytes.
const produces = fc.array(produce, { minLength: 1, maxLength: 20 });

const command: fc.Arbitrary<BrokerCommand> = fc.oneof(
  fc.record({ kind: fc.constant('createTopic' as const), topic: name, queues: fc.integer({ min: 1, max: 1024 }) }, { noNullPrototype: true }),
  produce,
  fc.record({ kind: fc.constant('produceBatch' as const), produces }, { noNullPrototype: true }),
  fc.record({ kind: fc.constantFrom('commitOffsets' as const, 'resetOffsets' as const), group: name, offsets: fc.array(position, { minLength: 1, maxLength: 4 }) }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant('truncateLog' as const), firstIndex: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant('setPreferredLeader' as const), node: fc.option(text, { nil: null }) }, { noNullPrototype: true }),
);

function corruptMessage(data: Uint8Array, index?: number): string {
  try {
    decodeCommand(data, index);
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    expect((error as LmqError).code).toBe('LMQ_CORRUPT_DATA');
    return (error as LmqError).message;
  }
  throw new Error('garbage was decoded');
}

function packed(value: unknown): Uint8Array {
  const payload = new Packr({ useRecords: false }).pack(value);
  return Uint8Array.from([COMMAND_FORMAT_VERSION, ...payload]);
}

describe('broker commands – codec', () => {
  it('round-trips every valid command exactly, bodies as plain Uint8Array', () => {
    fc.assert(
      fc.property(command, (original) => {
        const decoded = decodeCommand(encodeCommand(original), 7);
        expect(decoded).toStrictEqual(original);
        if (decoded.kind === 'produce') {
          for (const m of decoded.messages) expect(Object.getPrototypeOf(m.body)).toBe(Uint8Array.prototype);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('encodes equal commands to equal bytes', () => {
    fc.assert(
      fc.property(command, (original) => {
        expect(encodeCommand(structuredClone(original))).toEqual(encodeCommand(original));
      }),
      { numRuns: 100 },
    );
  });

  it('refuses garbage with LMQ_CORRUPT_DATA naming the log index', () => {
    expect(corruptMessage(new Uint8Array(0), 12)).toMatch(/log index 12: format byte is missing/);
    expect(corruptMessage(Uint8Array.from([9, 1, 2]), 3)).toMatch(/log index 3: format byte is 9, expected 1/);
    expect(corruptMessage(Uint8Array.from([COMMAND_FORMAT_VERSION, 0x81, 0xa1, 0x61]))).toMatch(/corrupt broker command: not valid msgpack/);
    expect(corruptMessage(Uint8Array.from([COMMAND_FORMAT_VERSION, 1, 2]))).toMatch(/not valid msgpack/);
    expect(corruptMessage(packed([1, 2]))).toMatch(/corrupt broker command: not a map/);
    expect(corruptMessage(packed({ kind: 'deleteTopic', topic: 't' }), 5)).toMatch(/unknown kind "deleteTopic"/);
    expect(corruptMessage(packed({ kind: 'createTopic', topic: 't', queues: 0 }))).toMatch(/queues must be from 1 to 1024, not 0/);
    expect(corruptMessage(packed({ kind: 'createTopic', topic: 't', queues: 2, extra: 1 }))).toMatch(/unknown field "extra"/);
    expect(corruptMessage(packed({ kind: 'truncateLog', firstIndex: 0 }))).toMatch(/firstIndex must be from 1 to/);
    expect(corruptMessage(packed({ kind: 'truncateLog', firstIndex: 1.5 }))).toMatch(/firstIndex must be a whole number/);
    expect(corruptMessage(packed({ kind: 'truncateLog', firstIndex: 3, queue: 1 }))).toMatch(/unknown field "queue"/);
    expect(corruptMessage(packed({ kind: 'setPreferredLeader', node: 7 }))).toMatch(/node must be a string/);
    expect(corruptMessage(packed({ kind: 'setPreferredLeader' }))).toMatch(/node must be a string/);
    const produce = { kind: 'produce', producerId: 'p', seq: 1, timestampMs: 0, messages: [{ msgId: 'm', topic: 't', queueId: 0, body: 'text' }] };
    expect(corruptMessage(packed(produce))).toMatch(/messages\[0\]\.body must be binary/);
    const valid = { ...produce, messages: [{ msgId: 'm', topic: 't', queueId: 0, body: new Uint8Array(1) }] };
    expect(decodeCommand(packed(valid)).kind).toBe('produce');
    expect(corruptMessage(packed({ ...valid, seq: -1 }))).toMatch(/seq must be from 0/); // 0 is a one-way send
    expect(corruptMessage(packed({ ...valid, messages: [] }))).toMatch(/messages must hold 1 to 1024 messages, not 0/);
  });

  it('builds a produceBatch from its produces\' own encodings, byte for byte what encodeCommand gives it; one produce is itself', () => {
    fc.assert(
      fc.property(produces, (batch) => {
        const { data, command } = encodeProduceBatch(batch.map(encodeProduce));
        expect(command).toStrictEqual(decodeCommand(data));
        if (batch.length === 1) expect(data).toEqual(encodeCommand(batch[0]!));
        else expect(data).toEqual(encodeCommand({ kind: 'produceBatch', produces: batch }));
        expect(decodeCommand(data)).toStrictEqual(batch.length === 1 ? batch[0] : { kind: 'produceBatch', produces: batch });
      }),
      { numRuns: 200 },
    );
  });

  it('keeps a produceBatch within one produce\'s bounds: messages, bodies, and one entry\'s bytes', () => {
    const of = (messages: number, bodyBytes: number): ProduceCommand => ({
      kind: 'produce', producerId: 'p', seq: 1, timestampMs: 0,
      messages: Array.from({ length: messages }, (_, i) => ({ msgId: `m${i}`, topic: 't', queueId: 0, body: new Uint8Array(i === 0 ? bodyBytes : 0) })),
    });
    const totals = (batch: ProduceCommand[]) => {
      const encoded = batch.map(encodeProduce);
      return { produces: batch.length, messages: batch.reduce((n, p) => n + p.messages.length, 0), bodyBytes: encoded.reduce((n, p) => n + p.bodyBytes, 0), dataBytes: encoded.reduce((n, p) => n + p.data.byteLength, 0) };
    };
    expect(produceBatchFits(totals([of(1000, 0), of(24, 0)]))).toBe(true);
    expect(produceBatchFits(totals([of(1000, 0), of(25, 0)]))).toBe(false); // 1,025 messages
    expect(produceBatchFits(totals([of(1, 4 * 1024 * 1024), of(1, 1)]))).toBe(false); // bodies past maxProduceBodyBytes
    expect(produceBatchFits({ produces: 2, messages: 2, bodyBytes: 2, dataBytes: MAX_COMMAND_BYTES })).toBe(false);
    expect(produceBatchFits({ produces: 1, messages: 1024, bodyBytes: 4 * 1024 * 1024, dataBytes: MAX_COMMAND_BYTES })).toBe(true); // one produce goes as itself
    expect(() => encodeProduceBatch([of(1000, 0), of(25, 0)].map(encodeProduce))).toThrow(/within one entry/);
    const batch = (parts: unknown[]) => packed({ kind: 'produceBatch', produces: parts });
    const valid = of(1, 1);
    expect(decodeCommand(batch([valid, valid])).kind).toBe('produceBatch');
    expect(corruptMessage(batch([of(1000, 0), of(25, 0)]))).toMatch(/produces carry 1025 messages, more than maxMessagesPerProduce 1024/);
    expect(corruptMessage(batch([]))).toMatch(/produces must hold 1 to 1024 items, not 0/);
    expect(corruptMessage(batch([valid, { kind: 'commitOffsets', group: 'g', offsets: [] }]))).toMatch(/produces\[1\] is not a produce/);
    expect(corruptMessage(batch([valid, { ...valid, seq: -1 }]))).toMatch(/produces\[1\]: seq must be from 0/);
    expect(corruptMessage(packed({ kind: 'produceBatch', produces: [valid], timestampMs: 1 }))).toMatch(/unknown field "timestampMs"/);
  });

  it('cleans -0 to 0, as msgpack writes it: the leader\'s own copy of a command is what every node decodes', () => {
    const { command, data } = encodeProduce({ kind: 'produce', producerId: 'p', seq: 1, timestampMs: -0, messages: [{ msgId: 'm', topic: 't', queueId: -0, body: new Uint8Array(1) }] });
    expect(Object.is(command.messages[0]!.queueId, 0)).toBe(true);
    expect(Object.is(command.timestampMs, 0)).toBe(true);
    expect(decodeCommand(data)).toStrictEqual(command);
  });

  it('refuses random bytes (never guesses a command)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
        let decoded: BrokerCommand | undefined;
        try {
          decoded = decodeCommand(data, 1);
        } catch (error) {
          expect((error as LmqError).code).toBe('LMQ_CORRUPT_DATA');
          return;
        }
        // The rare random input that is a valid command must re-encode to the same bytes.
        expect(encodeCommand(decoded)).toEqual(data);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses an invalid command at encode time with LMQ_BAD_INPUT', () => {
    const bad = { kind: 'createTopic', topic: 'has space', queues: 1 } as BrokerCommand;
    expect(() => encodeCommand(bad)).toThrow(/invalid "createTopic" command: topic "has space" may only use letters/);
    const tooMany = { kind: 'commitOffsets', group: 'g', offsets: [] } as BrokerCommand;
    expect(() => encodeCommand(tooMany)).toThrow(LmqError);
    expect(topicNameProblem('orders')).toBeUndefined();
    expect(topicNameProblem('x'.repeat(128))).toMatch(/1 to 127 characters/);
  });
});
