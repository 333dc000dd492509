import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { type BrokerCommand, COMMAND_FORMAT_VERSION, decodeCommand, encodeCommand, encodeProduce, encodeProduceWith, type ProduceCommand, type ProduceMessage } from '../src/broker/commands.js';
import { encodeProduceMessages } from '../src/protocol/produce-messages.js';
import { PRODUCE_FORMAT } from '../src/broker/produce-codec.js';
import { LmqError } from '../src/util/errors.js';

// Any well-formed text, as the client port accepts it: no control characters, any plane.
const text = fc.string({ minLength: 1, maxLength: 60, unit: 'grapheme' }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s));
const name = fc.stringMatching(/^[A-Za-z0-9%|_-]{1,20}$/);

const message: fc.Arbitrary<ProduceMessage> = fc.record(
  {
    msgId: text,
    topic: fc.constantFrom('orders', 'pay', 'x'),
    queueId: fc.integer({ min: 0, max: 1023 }),
    body: fc.uint8Array({ maxLength: 200 }),
    tag: text,
    keys: fc.array(text, { maxLength: 4 }),
    // Integer-like names: a map lists them first, whatever order they were set in.
    properties: fc.dictionary(fc.oneof(text.filter((s) => s !== '__proto__'), fc.nat(99).map(String)), fc.string({ maxLength: 10, unit: 'grapheme' }), { maxKeys: 4, noNullPrototype: true }),
    deliverAtMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  },
  { requiredKeys: ['msgId', 'topic', 'queueId', 'body'], noNullPrototype: true },
);

const produce: fc.Arbitrary<ProduceCommand> = fc.record(
  {
    kind: fc.constant('produce' as const),
    producerId: text,
    seq: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    timestampMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    messages: fc.array(message, { minLength: 1, maxLength: 6 }),
    routedQueues: fc.integer({ min: 1, max: 1024 }),
  },
  { requiredKeys: ['kind', 'producerId', 'seq', 'timestampMs', 'messages'], noNullPrototype: true },
);

/**
 * A batch's produces, often of one producer and one topic, as an unbatched producer's are (the
 * decoder reuses a repeated producerId's and topic's string: a damaged repeat must still be caught).
 */
const batchProduces: fc.Arbitrary<ProduceCommand[]> = fc.tuple(fc.array(produce, { minLength: 1, maxLength: 5 }), fc.boolean()).map(([produces, shared]) => {
  if (!shared) return produces;
  const { producerId } = produces[0]!;
  const topic = produces[0]!.messages[0]!.topic;
  return produces.map((p) => ({ ...p, producerId, messages: p.messages.map((m) => ({ ...m, topic })) }));
});

const produceCommand: fc.Arbitrary<BrokerCommand> = fc.oneof(produce, fc.record({ kind: fc.constant('produceBatch' as const), produces: batchProduces }, { noNullPrototype: true }));

/** The msgpack form (format 1) every produce had before the binary one: old logs hold it. */
function msgpackForm(command: BrokerCommand): Uint8Array {
  const payload = new Packr({ useRecords: false }).pack(command);
  return Uint8Array.from([COMMAND_FORMAT_VERSION, ...payload]);
}

function corruptMessage(data: Uint8Array): string {
  try {
    decodeCommand(data, 9);
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    expect((error as LmqError).code).toBe('LMQ_CORRUPT_DATA');
    return (error as LmqError).message;
  }
  throw new Error('garbage was decoded');
}

const valid: ProduceCommand = { kind: 'produce', producerId: 'p', seq: 300, timestampMs: 5, messages: [{ msgId: 'm', topic: 't', queueId: 1, body: Uint8Array.of(7) }] };

describe('binary produce codec (format 2)', () => {
  it('encodes produces and produce batches in format 2, smaller than msgpack, decoding to what the msgpack form of an old log decodes to', () => {
    fc.assert(
      fc.property(produceCommand, (original) => {
        const binary = encodeCommand(original);
        expect(binary[0]).toBe(PRODUCE_FORMAT);
        const decoded = decodeCommand(binary, 3);
        expect(decoded).toStrictEqual(original);
        expect(decodeCommand(msgpackForm(original), 3)).toStrictEqual(decoded);
        for (const m of decoded.kind === 'produce' ? decoded.messages : decoded.kind === 'produceBatch' ? decoded.produces.flatMap((p) => p.messages) : []) {
          expect(Object.getPrototypeOf(m.body)).toBe(Uint8Array.prototype);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never decodes a damaged entry to a command that encodes otherwise: a cut, a changed byte or an extra one is LMQ_CORRUPT_DATA or the same bytes again', () => {
    const damage = fc.oneof(
      fc.record({ cut: fc.nat() }),
      fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ append: fc.integer({ min: 0, max: 255 }) }),
    );
    fc.assert(
      fc.property(produceCommand, damage, (original, how) => {
        const bytes = Uint8Array.from(encodeCommand(original));
        let damaged: Uint8Array;
        if ('cut' in how) damaged = bytes.subarray(0, 1 + (how.cut % (bytes.byteLength - 1)));
        else if ('at' in how) {
          damaged = bytes;
          damaged[1 + (how.at % (bytes.byteLength - 1))] = how.byte;
        } else damaged = Uint8Array.from([...bytes, how.append]);
        let decoded: BrokerCommand;
        try {
          decoded = decodeCommand(damaged, 1);
        } catch (error) {
          expect((error as LmqError).code).toBe('LMQ_CORRUPT_DATA');
          return;
        }
        expect(encodeCommand(decoded)).toEqual(damaged);
      }),
      { numRuns: 1000 },
    );
  });

  it("builds from a produce request's encoded messages the entry that encoding the command gives, copying them", () => {
    fc.assert(
      fc.property(produce, (command) => {
        const copied = encodeProduceWith(command, encodeProduceMessages(command.messages));
        const encoded = encodeProduce(command);
        expect(Buffer.from(copied.data).equals(Buffer.from(encoded.data))).toBe(true);
        expect(copied.bodyBytes).toBe(encoded.bodyBytes);
        expect(copied.command).toBe(command);
      }),
    );
    // The fields around the messages are checked as encodeCommand checks them.
    const messages = encodeProduceMessages(valid.messages);
    expect(() => encodeProduceWith({ ...valid, producerId: 'a\nb' }, messages)).toThrow(/invalid produce command: producerId must not contain control characters/);
    expect(() => encodeProduceWith({ ...valid, seq: -1 }, messages)).toThrow(/invalid produce command: seq must be from 0/);
  });

  it('names what is wrong with a damaged entry', () => {
    const bytes = encodeCommand(valid);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([2, 1, 1, 0x70, 0xac, 0x02, 5, 0]); // format, kind, "p", seq 300 in two bytes, 5, no route
    expect(corruptMessage(bytes.subarray(0, bytes.byteLength - 1))).toMatch(/log index 9: messages\[0\]\.body: the command ends early/);
    expect(corruptMessage(Uint8Array.from([...bytes, 0]))).toMatch(/1 bytes follow the command/);
    expect(corruptMessage(Uint8Array.of(2, 3))).toMatch(/kind byte is 3, expected 1 \(produce\) or 2 \(produceBatch\)/);
    const longSeq = Uint8Array.from([2, 1, 1, 0x70, 0xac, 0x82, 0x00, ...bytes.subarray(6)]);
    expect(corruptMessage(longSeq)).toMatch(/seq is a longer number than it needs/);
    const flags = Uint8Array.from(bytes);
    flags[9] = 0x10; // the message's flags byte, after its count
    expect(corruptMessage(flags)).toMatch(/messages\[0\] has unknown flags 16/);
    const badUtf8 = Uint8Array.from(bytes);
    badUtf8[3] = 0xff; // producerId "p"
    expect(corruptMessage(badUtf8)).toMatch(/producerId is not valid UTF-8/);
    const space = encodeCommand({ ...valid, messages: [{ ...valid.messages[0]!, topic: 'tt' }] });
    space[space.indexOf(0x74)] = 0x20; // "tt" → " t"
    expect(corruptMessage(space)).toMatch(/messages\[0\]\.topic " t" may only use/);
    const batch = encodeCommand({ kind: 'produceBatch', produces: [valid, { ...valid, seq: 0 }] });
    expect(batch[2]).toBe(2);
    const noMessages = Uint8Array.from(batch);
    noMessages[noMessages.byteLength - 9] = 0; // the second produce's message count (its last 9 bytes: count, flags, "m", "t", queue, body)
    expect(corruptMessage(noMessages)).toMatch(/produces\[1\]: messages must hold 1 to 1024 messages, not 0/);
  });

  it('refuses in the binary form what the msgpack form\'s validation refuses, with the same message', () => {
    // Valid commands with a placeholder of the same length, patched into what validation refuses.
    const patched = (command: ProduceCommand, from: string, to: string): Uint8Array => {
      const bytes = Uint8Array.from(encodeCommand(command));
      const at = Buffer.from(bytes).indexOf(Buffer.from(from));
      expect(at).toBeGreaterThan(0);
      bytes.set(Buffer.from(to), at);
      return bytes;
    };
    const withMessage = (fields: Partial<ProduceMessage>): ProduceCommand => ({ ...valid, messages: [{ ...valid.messages[0]!, ...fields }] });
    const refusals: [Uint8Array, unknown][] = [
      [patched(withMessage({ msgId: 'mQm' }), 'mQm', 'm\u0001m'), { ...valid, messages: [{ ...valid.messages[0]!, msgId: 'm\u0001m' }] }],
      [patched(withMessage({ tag: 'tQt' }), 'tQt', 't\u007ft'), { ...valid, messages: [{ ...valid.messages[0]!, tag: 't\u007ft' }] }],
    ];
    for (const [bytes, asMap] of refusals) {
      const map = asMap as { messages: { body: unknown }[] };
      map.messages[0]!.body = Uint8Array.of(7);
      const fromMsgpack = corruptMessage(msgpackForm(map as unknown as BrokerCommand));
      expect(corruptMessage(bytes)).toBe(fromMsgpack);
    }
    // msgpackr drops a "__proto__" key; the binary form names it.
    expect(corruptMessage(patched(withMessage({ properties: { xxxxxxxxx: 'v' } }), 'xxxxxxxxx', '__proto__'))).toMatch(/messages\[0\]\.properties name "__proto__" is reserved/);
  });

  it('refuses repeated or reordered property names, which a map could not give', () => {
    const withProperties = (names: string[]): Uint8Array => {
      const bytes = encodeCommand({ ...valid, messages: [{ ...valid.messages[0]!, properties: Object.fromEntries(names.map((n) => [n, 'v'])) }] });
      return bytes;
    };
    const ab = withProperties(['a', 'b']);
    const aa = Uint8Array.from(ab);
    aa[aa.lastIndexOf(0x62)] = 0x61; // b → a
    expect(corruptMessage(aa)).toMatch(/messages\[0\]\.properties names "a" twice/);
    const a1 = withProperties(['1', 'a']);
    const swapped = Uint8Array.from(a1);
    const one = swapped.lastIndexOf(0x31);
    const a = swapped.lastIndexOf(0x61);
    [swapped[one], swapped[a]] = [0x61, 0x31]; // "a" first, then "1"
    expect(corruptMessage(swapped)).toMatch(/properties are not in the order a map lists them/);
  });

  it('refuses at encode, with LMQ_BAD_INPUT, a string UTF-8 cannot carry: a lone surrogate', () => {
    const lone = { ...valid, messages: [{ ...valid.messages[0]!, keys: ['ok', 'a\ud800b'] }] };
    expect(() => encodeCommand(lone)).toThrow(LmqError);
    expect(() => encodeCommand(lone)).toThrow(/invalid "produce" command: messages\[0\]\.keys holds a lone surrogate/);
    expect(() => encodeCommand({ kind: 'produceBatch', produces: [valid, { ...valid, producerId: '\udc00' }] })).toThrow(/produces\[1\]\.producerId holds a lone surrogate/);
  });

  it('carries long strings and big bodies: lengths past one uint byte', () => {
    const long = { ...valid, producerId: 'é'.repeat(150), messages: [{ ...valid.messages[0]!, msgId: 'x'.repeat(128), body: new Uint8Array(300_000).fill(3), properties: { k: '€'.repeat(900) } }] };
    expect(decodeCommand(encodeCommand(long))).toStrictEqual(long);
  });
});
