import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { appendUnits, unitAt, unitCount, withGaps } from '../src/broker/consume-queue-codec.js';
import type { ConsumeQueueRecord } from '../src/broker/store.js';

// Any UTF-16, lone surrogates too: a msgpack command may carry them, and units must keep them.
const text = fc.oneof(fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' }), fc.string({ minLength: 1, maxLength: 20, unit: 'binary' }));

const unit: fc.Arbitrary<ConsumeQueueRecord> = fc.record({
  logIndex: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  batchPos: fc.nat(1023),
  storeTimestampMs: fc.nat(Number.MAX_SAFE_INTEGER),
  bodyBytes: fc.nat(4 * 1024 * 1024),
  msgId: text,
  // Up to 32 keys of 80 characters: bodies past 127 bytes take a longer length in front.
  keys: fc.array(text, { maxLength: 32 }),
  tagHash: fc.option(fc.nat(2 ** 32 - 1), { nil: null }),
  msgIdInRun: fc.oneof(fc.boolean(), fc.nat(Number.MAX_SAFE_INTEGER)),
});

/** A record as appends build it: runs of units, each after some gaps. */
const appends = fc.array(fc.tuple(fc.nat(3), fc.array(unit, { minLength: 1, maxLength: 8 })), { minLength: 1, maxLength: 6 });

/** The record built by appends, and what each position holds (null: a gap). */
function build(runs: [number, ConsumeQueueRecord[]][]): { record: Uint8Array; expected: (ConsumeQueueRecord | null)[] } {
  let record: Uint8Array | undefined;
  const expected: (ConsumeQueueRecord | null)[] = [];
  for (const [gaps, units] of runs) {
    const position = expected.length + gaps;
    record = appendUnits(record, position, units, 0, units.length);
    while (expected.length < position) expected.push(null);
    expected.push(...units);
  }
  return { record: record!, expected };
}

describe('consume queue records', () => {
  it('read back every appended unit and gap, at its position, and nothing past the last', () => {
    fc.assert(
      fc.property(appends, (runs) => {
        const { record, expected } = build(runs);
        expect(unitCount(record)).toBe(expected.length);
        expected.forEach((want, position) => expect(unitAt(record, position)).toEqual(want));
        expect(unitAt(record, expected.length)).toBeUndefined();
      }),
    );
  });

  it('append a slice of the units given, and refuse a position a unit already holds', () => {
    fc.assert(
      fc.property(fc.array(unit, { minLength: 3, maxLength: 6 }), (units) => {
        const record = appendUnits(undefined, 0, units, 1, units.length - 1);
        expect(unitCount(record)).toBe(units.length - 2);
        expect(unitAt(record, 0)).toEqual(units[1]);
        expect(() => appendUnits(record, units.length - 3, units, 0, 1)).toThrow(/already holds position/);
      }),
    );
  });

  it('turn units into gaps below a position and at one removed, and say when none is left', () => {
    fc.assert(
      fc.property(appends, fc.nat(40), fc.nat(40), (runs, firstKept, removed) => {
        const { record, expected } = build(runs);
        const want = expected.map((u, position) => (position < firstKept || position === removed ? null : u));
        const gapped = withGaps(record, firstKept, removed);
        if (want.every((u) => u === null)) {
          expect(gapped).toBeNull();
          return;
        }
        expect(gapped).not.toBeNull();
        expect(unitCount(gapped!)).toBe(expected.length);
        want.forEach((u, position) => expect(unitAt(gapped!, position)).toEqual(u));
        // One state, one encoding: the same units appended afresh give the same bytes.
        expect(Buffer.from(withGaps(gapped!, 0)!)).toEqual(Buffer.from(gapped!));
      }),
    );
  });

  it('stop the node on bytes it did not write', () => {
    const record = appendUnits(undefined, 0, [{ logIndex: 5, batchPos: 0, storeTimestampMs: 1, bodyBytes: 3, msgId: 'm', keys: [], tagHash: null, msgIdInRun: false }], 0, 1);
    expect(() => unitAt(record.subarray(0, record.byteLength - 1), 0)).toThrow(/corrupt consume queue record: unit: the consume queue record ends early/);
    const badFlags = Buffer.from(record);
    badFlags[1] = 0x40;
    expect(() => unitAt(badFlags, 0)).toThrow(/corrupt consume queue record: unit flags 64/);
    const longer = Buffer.concat([record.subarray(0, 1), Buffer.from([record[1]!, 0x85, 0x00]), record.subarray(3)]);
    longer[0] = record[0]! + 1;
    expect(() => unitAt(longer, 0)).toThrow(/corrupt consume queue record: logIndex is a longer number than it needs/);
  });

  it('keep a lone surrogate in WTF-8, and refuse WTF-8 a unit need not have or that is not canonical', () => {
    const unit = (msgId: string, keys: string[] = []): ConsumeQueueRecord => ({ logIndex: 5, batchPos: 0, storeTimestampMs: 1, bodyBytes: 3, msgId, keys, tagHash: null, msgIdInRun: false });
    const lone = appendUnits(undefined, 0, [unit('a\ud800', ['k'])], 0, 1);
    expect(unitAt(lone, 0)!.msgId).toBe('a\ud800');
    // Bytes of the unit: length, flags (KEYS | WTF8), logIndex 5, batchPos 0, time 1, body 3, msgId 'a' ED A0 80.
    expect([...lone.subarray(0, 11)]).toEqual([lone.byteLength - 1, 2 | 16, 5, 0, 1, 3, 4, 0x61, 0xed, 0xa0, 0x80]);
    const withMsgId = (bytes: number[]) => {
      const body = [2 | 16, 5, 0, 1, 3, bytes.length, ...bytes, ...lone.subarray(11)];
      return Buffer.from([body.length, ...body]);
    };
    expect(unitAt(withMsgId([0x61, 0xed, 0xa0, 0x80]), 0)!.msgId).toBe('a\ud800');
    for (const bad of [[0xc0, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xe2, 0x28, 0xa1]]) {
      expect(() => unitAt(withMsgId(bad), 0)).toThrow(/corrupt consume queue record: msgId is not valid WTF-8/);
    }
    expect(() => unitAt(withMsgId([0x61, 0x62]), 0)).toThrow(/corrupt consume queue record: the WTF-8 flag is set on a unit whose strings are all Unicode text/);
  });
});
