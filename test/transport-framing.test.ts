import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameMac } from '../src/transport/frame-mac.js';
import { drainFrames, encodeFrame, FrameDecoder, FrameError } from '../src/transport/framing.js';
import { isLmqError } from '../src/util/errors.js';

// Values msgpack round-trips exactly: -0 becomes 0 and "__proto__" is renamed by msgpackr
// (a guard against prototype pollution), so the generator leaves both out.
const { value: wireValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double().map((x) => (Object.is(x, -0) ? 0 : x)),
    fc.string(),
    fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string().filter((key) => key !== '__proto__'), tie('value'), { maxKeys: 5 }),
  ),
}));

function splitAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): unknown[] {
  const values: unknown[] = [];
  for (const chunk of chunks) {
    const error = drainFrames(decoder, chunk, (value) => {
      values.push(value);
      return true;
    });
    if (error !== undefined) throw error;
  }
  return values;
}

function header(payloadBytes: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(payloadBytes, 0);
  return bytes;
}

describe('transport framing – round trip', () => {
  it('decodes any sequence of values split at any chunk boundaries', () => {
    fc.assert(
      fc.property(fc.array(wireValue, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (values, cuts) => {
        const stream = Buffer.concat(values.map((value) => encodeFrame(value)));
        for (const binaryFields of ['field', 'frame'] as const) {
          const decoder = new FrameDecoder(1024 * 1024, binaryFields);
          expect(decodeAll(decoder, splitAt(stream, cuts))).toEqual(values);
          expect(decoder.bufferedByteCount).toBe(0);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('returns binary fields as Buffers that own their memory', () => {
    const frame = encodeFrame({ data: new Uint8Array([1, 2, 3]), nested: [Buffer.from('abc')] });
    const [decoded] = decodeAll(new FrameDecoder(), [frame]) as [{ data: Uint8Array; nested: Buffer[] }];
    expect(decoded.data).toBeInstanceOf(Uint8Array);
    expect(Buffer.isBuffer(decoded.data)).toBe(true);
    expect([...decoded.data]).toEqual([1, 2, 3]);
    expect(decoded.nested[0]?.toString()).toBe('abc');
    // copyBuffers: the decoded bytes must not alias the frame, which the socket layer may reuse.
    expect(decoded.data.buffer).not.toBe(frame.buffer);
  });

  it("with 'frame', returns binary fields as views into one copy of their frame, never of the chunk", () => {
    const first = encodeFrame({ data: new Uint8Array([1, 2, 3]), nested: [Buffer.from('abc')] });
    const second = encodeFrame({ data: new Uint8Array([4, 5]) });
    // Whole in one chunk, and spread over two; zeroing the chunks afterwards shows nothing aliases them.
    for (const chunks of [[Buffer.concat([first, second])], [first.subarray(0, 5), Buffer.concat([first.subarray(5), second])]]) {
      const [a, b] = decodeAll(new FrameDecoder(1024, 'frame'), chunks) as [{ data: Buffer; nested: Buffer[] }, { data: Buffer }];
      for (const chunk of chunks) chunk.fill(0);
      expect([...a.data]).toEqual([1, 2, 3]);
      expect(a.nested[0]?.toString()).toBe('abc');
      expect([...b.data]).toEqual([4, 5]);
      // One allocation for the frame ('field' would give each its own ArrayBuffer).
      expect(a.data.buffer).toBe(a.nested[0]?.buffer);
    }
  });

  it('waits on a truncated frame instead of failing', () => {
    const frame = encodeFrame({ hello: 'world' });
    const decoder = new FrameDecoder();
    decoder.push(frame.subarray(0, frame.length - 1));
    expect(decoder.next()).toBeUndefined();
    decoder.push(frame.subarray(frame.length - 1));
    expect(decoder.next()).toEqual({ value: { hello: 'world' } });
  });
});

describe('transport framing – hostile input', () => {
  it('rejects an oversized length header before any body byte arrives', () => {
    for (const declared of [1025, 0xffff_ffff]) {
      const decoder = new FrameDecoder(1024);
      decoder.push(header(declared));
      expect(() => decoder.next()).toThrow(FrameError);
      // Only the 4 header bytes were ever held: nothing was allocated for the declared body.
      expect(decoder.bufferedByteCount).toBe(4);
    }
  });

  it('rejects a zero-length frame', () => {
    const decoder = new FrameDecoder();
    decoder.push(header(0));
    expect(() => decoder.next()).toThrow(/empty payload/);
  });

  it('turns random bytes into a FrameError or values, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, withValidHeader) => {
        const input = withValidHeader ? Buffer.concat([header(Math.max(1, bytes.length)), Buffer.from(bytes)]) : Buffer.from(bytes);
        const error = drainFrames(new FrameDecoder(256), input, () => true);
        expect(error === undefined || error instanceof FrameError).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('turns absurd nesting (stack overflow in the decoder) into a FrameError', () => {
    const payload = Buffer.alloc(200_000, 0x91); // fixarray(1) inside fixarray(1) ...
    const error = drainFrames(new FrameDecoder(), Buffer.concat([header(payload.length), payload]), () => true);
    expect(error).toBeInstanceOf(FrameError);
  });

  it('refuses to encode a value over maxFrameBytes or one msgpack cannot represent', () => {
    const tooBig = (() => { try { encodeFrame(Buffer.alloc(2000), 1024); } catch (error) { return error; } })();
    expect(isLmqError(tooBig, 'LMQ_BAD_INPUT')).toBe(true);
    expect((tooBig as Error).message).toMatch(/exceeds maxFrameBytes 1024/);
    expect(() => encodeFrame(1n << 80n)).toThrow(/cannot encode frame/);
  });
});

describe('transport framing – authenticated frames', () => {
  const key = Buffer.alloc(32, 7);

  it('decodes MAC-tagged frames split at any chunk boundaries, and never delivers a frame with a flipped bit', () => {
    fc.assert(
      fc.property(fc.array(wireValue, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), fc.nat(), (values, cuts, flip) => {
        const sender = new FrameMac(key);
        const stream = Buffer.concat(values.flatMap((value) => {
          const frame = encodeFrame(value);
          return [frame, sender.next(frame)];
        }));
        const decoder = new FrameDecoder(1024 * 1024);
        decoder.frameMac = new FrameMac(key);
        expect(decodeAll(decoder, splitAt(stream, cuts))).toEqual(values);
        expect(decoder.bufferedByteCount).toBe(0);
        const damaged = Buffer.from(stream);
        const at = flip % damaged.length;
        damaged[at] = (damaged[at] as number) ^ 0x80;
        // The damaged frame is never delivered: the decoder fails, or (a length header grown)
        // waits for bytes that never come; only the frames before it get through.
        const strict = new FrameDecoder(1024 * 1024);
        strict.frameMac = new FrameMac(key);
        const delivered: unknown[] = [];
        const error = drainFrames(strict, damaged, (value) => delivered.push(value) > 0);
        expect(delivered.length).toBeLessThan(values.length);
        expect(delivered).toEqual(values.slice(0, delivered.length));
        if (error === undefined) expect(strict.bufferedByteCount).toBeGreaterThan(0);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a frame tagged under another key', () => {
    const frame = encodeFrame({ hello: 'world' });
    const decoder = new FrameDecoder();
    decoder.frameMac = new FrameMac(key);
    expect(() => decodeAll(decoder, [frame, new FrameMac(Buffer.alloc(32, 8)).next(frame)])).toThrow(/frame authentication failed/);
  });
});
