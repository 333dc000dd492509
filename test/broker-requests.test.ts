// The client-port request parser: its hand-written fast check for produce must accept only
// what the zod schema accepts, and return the same request. fast-check generates produces
// that are valid, and produces with one field broken in the ways the schema cares about.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRequest, parseWithSchema } from '../src/broker/requests.js';
import { LIMITS } from '../src/protocol/index.js';

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
