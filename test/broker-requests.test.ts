// The client-port request parser: its hand-written fast check for produce must accept only
// what the zod schema accepts, and return the same request. fast-check generates produces
// that are valid, and produces with one field broken in the ways the schema cares about.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRequest, parseWithSchema } from '../src/broker/requests.js';
import { LIMITS, type RequestOf } from '../src/protocol/index.js';
import { encodeProduceMessages } from '../src/protocol/produce-messages.js';

function outcome(parse: (body: unknown) => unknown, body: unknown): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: parse(body) };
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
}

const name = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_%|.-]{1,12}$/), fc.constantFrom('', 'a b', 'x'.repeat(LIMITS.maxNameLength), 'x'.repeat(LIMITS.maxNameLength + 1), 'ok/no'));
const text = (maxLength: number) => fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom('', 'a\nb', 'y'.repeat(maxLength), 'y'.repeat(maxLength + 1)));
const integer = fc.oneof(fc.integer({ min: -2, max: 70_000 }), fc.constantFrom(0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, '3'));
const body = fc.oneof(fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)), fc.uint8Array({ maxLength: 16 }), fc.constantFrom('text', null, [1, 2]));

const message = fc.record(
  {
    msgId: text(LIMITS.maxIdLength),
    topic: name,
    queueId: integer,
    body,
    tag: fc.oneof(fc.constant(undefined), text(LIMITS.maxTagLength), fc.constant(7)),
    keys: fc.oneof(fc.constant(undefined), fc.array(text(LIMITS.maxKeyLength), { maxLength: 3 }), fc.constant(Array.from({ length: LIMITS.maxKeysPerMessage + 1 }, () => 'k')), fc.constant(['a', 1])),
    properties: fc.oneof(fc.constant(undefined), fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 })),
    extra: fc.constant(1),
  },
  { requiredKeys: ['body'] },
);

const produce = fc.record(
  {
    op: fc.constantFrom('produce', 'pull'),
    producerId: text(LIMITS.maxIdLength),
    seq: integer,
    messages: fc.oneof(fc.array(message, { minLength: 0, maxLength: 3 }), fc.constant('none')),
    extra: fc.constant(true),
  },
  { requiredKeys: ['op'] },
);

const noControl = (maxLength: number) => fc.string({ minLength: 1, maxLength }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s));
const validProduce = fc.record({
  op: fc.constant('produce'),
  producerId: noControl(LIMITS.maxIdLength),
  seq: fc.integer({ min: 1 }),
  messages: fc.array(
    fc.record({ msgId: noControl(LIMITS.maxIdLength), topic: fc.stringMatching(/^[A-Za-z0-9_%|-]{1,20}$/), queueId: fc.integer({ min: 0, max: LIMITS.maxQueuesPerTopic - 1 }), body: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) }),
    { minLength: 1, maxLength: 4 },
  ),
});

describe('broker requests – produce fast check agrees with the schema', () => {
  it('parses every generated request exactly as the zod schema does (same value or same error)', () => {
    fc.assert(
      fc.property(produce, (request) => {
        expect(outcome(parseRequest, request)).toEqual(outcome(parseWithSchema, request));
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts valid produces and hands back the request itself (the fast path ran)', () => {
    fc.assert(
      fc.property(validProduce, (request) => {
        expect(parseRequest(request)).toBe(request);
        expect(parseWithSchema(request)).toEqual(request);
      }),
    );
  });

  it('sends produces with properties, sparse arrays or class instances through the schema', () => {
    const base = { op: 'produce', producerId: 'p', seq: 1, messages: [{ msgId: 'm', topic: 't', queueId: 0, body: Buffer.from('x') }] };
    const withProperties = { ...base, messages: [{ ...base.messages[0], properties: { a: '1' } }] };
    expect(parseRequest(withProperties)).not.toBe(withProperties);
    expect(parseRequest(withProperties)).toEqual(withProperties);
    // eslint-disable-next-line no-sparse-arrays
    expect(() => parseRequest({ ...base, messages: [, base.messages[0]] })).toThrow(/messages\.0/);
    expect(() => parseRequest({ ...base, messages: [{ ...base.messages[0], keys: [, 'k'] }] })).toThrow(/keys\.0/);
  });
});

// A produce may carry its messages encoded (EncodedProduceRequest): the broker decodes them at
// its edge and, as it checks each decoded message itself instead of running the schema over it,
// its decoder must accept exactly the messages the schema accepts.
// Mostly valid fields, so that whole produces are accepted often too.
const mostly = <T, U>(valid: fc.Arbitrary<T>, broken: fc.Arbitrary<U>) => fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: broken });
const encodableText = (maxLength: number) => mostly(noControl(12), fc.oneof(fc.string({ minLength: 0, maxLength: 12 }), fc.constantFrom('', 'a\nb', 'y'.repeat(maxLength), 'y'.repeat(maxLength + 1), '\u007f')));
const encodableMessage = fc.record(
  {
    msgId: encodableText(LIMITS.maxIdLength),
    topic: mostly(fc.stringMatching(/^[A-Za-z0-9_%|-]{1,12}$/), name),
    queueId: mostly(fc.integer({ min: 0, max: LIMITS.maxQueuesPerTopic - 1 }), fc.integer({ min: LIMITS.maxQueuesPerTopic, max: LIMITS.maxQueuesPerTopic + 2 })),
    body: fc.oneof({ weight: 20, arbitrary: fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)) }, { weight: 1, arbitrary: fc.constant(Buffer.alloc(LIMITS.maxProduceBodyBytes + 1)) }),
    tag: encodableText(LIMITS.maxTagLength),
    keys: mostly(fc.array(encodableText(LIMITS.maxKeyLength), { maxLength: 3 }), fc.constant(Array.from({ length: LIMITS.maxKeysPerMessage + 1 }, () => 'k'))),
    properties: mostly(
      fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 3 }),
      fc.constantFrom({ ['x'.repeat(LIMITS.maxPropertyNameLength + 1)]: 'v' }, Object.fromEntries(Array.from({ length: LIMITS.maxPropertiesPerMessage + 1 }, (_, i) => [`p${i}`, 'v']))),
    ),
    deliverAtMs: fc.oneof(fc.integer({ min: 0 }), fc.constant(Number.MAX_SAFE_INTEGER)),
  },
  { requiredKeys: ['msgId', 'topic', 'queueId', 'body'] },
);
/** The value with every byte array as a plain array: a decoded body is a Uint8Array, a sent one may be a Buffer. */
const plainBytes = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return Array.from(value);
  if (Array.isArray(value)) return value.map(plainBytes);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, plainBytes(field)]));
  return value;
};

describe('broker requests – a produce with its messages encoded', () => {
  it('is accepted exactly when the same produce with maps is, and parses to the same messages', () => {
    const verdicts = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(fc.array(encodableMessage, { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 1000 }), (messages, seq) => {
        const maps = { op: 'produce', producerId: 'p', seq, messages };
        const encoded = { op: 'produce', producerId: 'p', seq, encoded: encodeProduceMessages(messages) };
        const fromMaps = outcome(parseRequest, maps);
        const fromEncoded = outcome(parseRequest, encoded);
        expect(fromEncoded.ok).toBe(fromMaps.ok);
        verdicts[fromMaps.ok ? 'accepted' : 'refused'] += 1;
        if (fromMaps.ok && fromEncoded.ok) {
          const { encoded: bytes, ...parsed } = fromEncoded.value as RequestOf<'produce'>;
          expect(bytes).toBe(encoded.encoded);
          expect(plainBytes(parsed)).toEqual(plainBytes(fromMaps.value));
        }
      }),
      { numRuns: 600 },
    );
    // Both verdicts were put to the test, not one alone.
    expect(verdicts.accepted).toBeGreaterThan(30);
    expect(verdicts.refused).toBeGreaterThan(30);
  });

  it('refuses, naming what is wrong, bytes that are not messages, and messages sent twice over', () => {
    const message = { msgId: 'm', topic: 't', queueId: 0, body: Buffer.from('x') };
    const encoded = encodeProduceMessages([message]);
    expect(() => parseRequest({ op: 'produce', producerId: 'p', seq: 1, encoded: encoded.subarray(0, encoded.length - 1) })).toThrow(/bad request: encoded: messages\[0\]\.body/);
    expect(() => parseRequest({ op: 'produce', producerId: 'p', seq: 1, encoded: Buffer.concat([encoded, Buffer.from([0])]) })).toThrow(/bad request: encoded: 1 bytes follow the messages/);
    expect(() => parseRequest({ op: 'produce', producerId: 'p', seq: 1, encoded: 'text' })).toThrow(/bad request: encoded: must be binary/);
    expect(() => parseRequest({ op: 'produce', producerId: 'p', seq: 1, encoded, messages: [message] })).toThrow(/messages or encoded, not both/);
    expect(() => parseRequest({ op: 'produce', producerId: 'p\n', seq: 1, encoded })).toThrow(/bad request: producerId/);
    expect(() => parseRequest({ op: 'produce', producerId: 'p', seq: 1, encoded, extra: 1 })).toThrow(/bad request/);
  });
});
