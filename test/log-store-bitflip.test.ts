// Byte-flip property: damage one byte anywhere in the written part of any segment. Recovery
// either refuses with LMQ_CORRUPT_DATA or, when the byte is in the very last frame, cuts that
// frame as a torn tail; reads of an open log refuse the damaged frame. The damaged entry is
// never returned as data. A sealed segment opened from its index file is not scanned at open,
// so there the damage may instead be refused by the first read of it — but always refused.
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../src/log/frame.js';
import { LogStore } from '../src/log/log-store.js';
import { type Entry, EntryType } from '../src/raft/types.js';
import { isLmqError } from '../src/util/errors.js';
import { options, plain, readAll, removeTempDirs, segmentFiles, tempDir } from './log-helpers.js';

afterAll(removeTempDirs);

/** Entries with pseudo-random payloads (no long zero runs that could pass for unwritten sectors). */
function randomEntries(payloadSizes: number[], seed: number): Entry[] {
  let state = seed | 1;
  return payloadSizes.map((size, i) => {
    const data = new Uint8Array(size);
    for (let b = 0; b < size; b++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      data[b] = state & 0xff;
    }
    return { index: i + 1, term: 1 + Math.floor(i / 7), type: EntryType.Normal, data };
  });
}

interface FlipTarget {
  fileName: string;
  offset: number;
  /** The byte lies in the last frame of the last segment: a torn tail, not corruption. */
  inLastFrame: boolean;
}

/** Picks a byte in the written part (header + frames) of one segment file. */
function pickTarget(dir: string, written: Entry[], fileChoice: number, position: number): FlipTarget {
  const files = segmentFiles(dir);
  const fileIndex = fileChoice % files.length;
  const fileName = files[fileIndex]!;
  const first = Number(fileName.slice(0, 20));
  const next = fileIndex + 1 < files.length ? Number(files[fileIndex + 1]!.slice(0, 20)) : written.length + 1;
  let end = SEGMENT_HEADER_BYTES;
  let lastFrameStart = end;
  for (let index = first; index < next; index++) {
    lastFrameStart = end;
    end += FRAME_HEADER_BYTES + written[index - 1]!.data.byteLength;
  }
  const offset = Math.floor(position * end);
  const isLastFile = fileIndex === files.length - 1;
  return { fileName, offset, inLastFrame: isLastFile && next > first && offset >= lastFrameStart };
}

function flip(dir: string, target: FlipTarget, xor: number): void {
  const path = join(dir, target.fileName);
  const bytes = readFileSync(path);
  bytes[target.offset] = bytes[target.offset]! ^ xor;
  writeFileSync(path, bytes);
}

const scenario = fc.record({
  payloadSizes: fc.array(fc.integer({ min: 0, max: 700 }), { minLength: 1, maxLength: 40 }),
  seed: fc.integer(),
  fileChoice: fc.nat(),
  position: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  xor: fc.integer({ min: 1, max: 255 }),
  /** false: the index files are deleted, so open scans every segment as it did before them. */
  withIndex: fc.boolean(),
});

function deleteIndexes(dir: string): void {
  for (const name of readdirSync(dir)) if (name.endsWith('.idx')) rmSync(join(dir, name));
}

/** Opens the log; null when open refused it as corrupt (asserted to name the damaged file). */
function openOrRefuse(dir: string, target: FlipTarget): LogStore | null {
  try {
    return LogStore.open(options(dir, { segmentBytes: 4096 }));
  } catch (error) {
    expect(isLmqError(error, 'LMQ_CORRUPT_DATA')).toBe(true);
    expect((error as Error).message).toContain(target.fileName);
    return null;
  }
}

async function writeLog(written: Entry[]): Promise<string> {
  const dir = tempDir();
  const store = LogStore.open(options(dir, { segmentBytes: 4096 }));
  for (let i = 0; i < written.length; i += 3) store.append(written.slice(i, i + 3));
  await store.close();
  return dir;
}

describe('log store – byte-flip property', () => {
  it('recovery refuses a flipped byte as corruption or cuts it as the torn last frame', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ payloadSizes, seed, fileChoice, position, xor, withIndex }) => {
        const written = randomEntries(payloadSizes, seed);
        const dir = await writeLog(written);
        const target = pickTarget(dir, written, fileChoice, position);
        flip(dir, target, xor);
        if (!withIndex) deleteIndexes(dir);
        const store = openOrRefuse(dir, target);
        if (store === null) {
          expect(target.inLastFrame).toBe(false);
        } else if (target.inLastFrame) {
          expect(plain(readAll(store))).toEqual(plain(written.slice(0, -1)));
        } else {
          // Only a sealed segment taken from its index can have hidden the damage at open.
          expect(withIndex).toBe(true);
          let refused: unknown = null;
          try {
            readAll(store);
          } catch (error) {
            refused = error;
          }
          expect(isLmqError(refused, 'LMQ_CORRUPT_DATA')).toBe(true);
          expect((refused as Error).message).toContain(target.fileName);
        }
        await store?.close();
        removeTempDirs();
      }),
      { numRuns: 120 },
    );
  });

  it('reads from an open log refuse a frame flipped under them', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ payloadSizes, seed, fileChoice, position, xor }) => {
        const written = randomEntries(payloadSizes, seed);
        const dir = await writeLog(written);
        const store = LogStore.open(options(dir, { segmentBytes: 4096 }));
        const target = pickTarget(dir, written, fileChoice, position);
        flip(dir, target, xor);
        try {
          // Reads do not look at segment headers, so a flip there leaves every entry intact.
          const all = readAll(store);
          expect(target.offset).toBeLessThan(SEGMENT_HEADER_BYTES);
          expect(plain(all)).toEqual(plain(written));
        } catch (error) {
          expect(isLmqError(error, 'LMQ_CORRUPT_DATA')).toBe(true);
        }
        await store.close();
        removeTempDirs();
      }),
      { numRuns: 40 },
    );
  });
});
