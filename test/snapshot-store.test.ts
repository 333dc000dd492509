// The snapshot store on real files: round trip, refusal of damaged files (a fast-check property
// over flips, truncations and deletions), pruning to `keep`, bounds, and a reader that outlives
// the pruning of its file.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_SNAPSHOT_BYTES, SNAPSHOT_FORMAT_VERSION, snapshotFileName } from '../src/log/snapshot-format.js';
import { IO_CHUNK_BYTES, type SnapshotMeta, SnapshotStore } from '../src/log/snapshot-store.js';
import { LmqError } from '../src/util/errors.js';
import { capturingLogger, removeTempDirs, tempDir } from './log-helpers.js';
import { payloadOf, readPayload } from './snapshot-helpers.js';

afterEach(removeTempDirs);

async function writeSnapshot(store: SnapshotStore, index: number, term: number, payloadBytes: number, metadata?: Uint8Array): Promise<SnapshotMeta> {
  const payload = payloadOf(index, payloadBytes);
  // Uneven chunks, smaller and larger than one file write.
  const cuts = [0, Math.floor(payloadBytes / 7), Math.floor(payloadBytes / 3), payloadBytes];
  const chunks = cuts.slice(1).map((end, i) => payload.subarray(cuts[i], end));
  return store.write({ index, term, ...(metadata === undefined ? {} : { metadata }) }, chunks);
}

async function errorOf(promise: Promise<unknown>): Promise<LmqError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    return error as LmqError;
  }
  throw new Error('the call succeeded');
}

function snapFiles(dir: string): string[] {
  return readdirSync(dir).sort();
}

describe('snapshot store – write and read back', () => {
  it('round trip: metadata, payload, raw bytes and checksum survive a reopen', async () => {
    const dir = tempDir();
    const store = await SnapshotStore.open({ dir });
    const metadata = new Uint8Array([0x81, 0xa1, 0x76, 0x01]);
    const payloadBytes = 3 * IO_CHUNK_BYTES + 12_345;
    const written = await writeSnapshot(store, 42, 7, payloadBytes, metadata);
    expect(written).toMatchObject({ index: 42, term: 7, payloadBytes, fileName: snapshotFileName(42, 7) });
    await store.close();

    const reopened = await SnapshotStore.open({ dir });
    expect(reopened.list()).toEqual([written]);
    const newest = await reopened.newest();
    expect(newest).toEqual(written);
    expect([...newest!.metadata]).toEqual([...metadata]);
    expect((await readPayload(reopened, newest!)).equals(payloadOf(42, payloadBytes))).toBe(true);

    const file = readFileSync(join(dir, written.fileName));
    expect(file.length).toBe(written.sizeBytes);
    expect(createHash('sha256').update(file.subarray(0, file.length - 32)).digest().equals(written.checksum)).toBe(true);
    const reader = (await reopened.openReader(42, 7))!;
    const pieces: Buffer[] = [];
    for (let at = 0; at < reader.meta.sizeBytes; ) {
      const piece = await reader.read(at, 1_000_003);
      pieces.push(piece);
      at += piece.length;
    }
    expect(Buffer.concat(pieces).equals(file)).toBe(true);
    expect((await reader.read(reader.meta.sizeBytes, 10)).length).toBe(0);
    expect((await errorOf(reader.read(reader.meta.sizeBytes + 1, 10))).code).toBe('LMQ_BAD_INPUT');
    await reader.close();
    expect(await reopened.openReader(42, 8)).toBeUndefined();
    await reopened.close();
  });

  it('an empty payload and an empty store', async () => {
    const store = await SnapshotStore.open({ dir: join(tempDir(), 'snapshots') });
    expect(await store.newest()).toBeUndefined();
    expect(store.list()).toEqual([]);
    const meta = await store.write({ index: 1, term: 1 }, []);
    expect(meta.payloadBytes).toBe(0);
    expect((await readPayload(store, meta)).length).toBe(0);
    await store.close();
  });

  it('newest(maxIndex) is the newest at or below maxIndex', async () => {
    const store = await SnapshotStore.open({ dir: tempDir(), keep: 3 });
    for (const index of [10, 20, 30]) await writeSnapshot(store, index, 1, 100);
    expect((await store.newest(29))?.index).toBe(20);
    expect((await store.newest(30))?.index).toBe(30);
    expect((await store.newest(10))?.index).toBe(10);
    expect(await store.newest(9)).toBeUndefined();
    await store.close();
  });

  it('keeps the newest `keep` snapshots and deletes older ones once a new one is durable', async () => {
    const dir = tempDir();
    const store = await SnapshotStore.open({ dir });
    for (const index of [5, 6, 7, 8]) await writeSnapshot(store, index, 2, 500);
    expect(snapFiles(dir)).toEqual([snapshotFileName(7, 2), snapshotFileName(8, 2)]);
    expect(store.list().map((m) => m.index)).toEqual([7, 8]);
    await store.close();
    const three = await SnapshotStore.open({ dir, keep: 3 });
    for (const index of [9, 10]) await writeSnapshot(three, index, 2, 500);
    expect(three.list().map((m) => m.index)).toEqual([8, 9, 10]);
    await three.close();
  });

  it('refuses a snapshot over maxSnapshotBytes with LMQ_OVERLOADED and keeps nothing of it', async () => {
    const dir = tempDir();
    const store = await SnapshotStore.open({ dir, maxSnapshotBytes: 4096 });
    await writeSnapshot(store, 1, 1, 1000);
    const error = await errorOf(writeSnapshot(store, 2, 1, 5000));
    expect(error.code).toBe('LMQ_OVERLOADED');
    expect(error.message).toMatch(/passes the bound of 4096 B per snapshot file/);
    expect(snapFiles(dir)).toEqual([snapshotFileName(1, 1)]);
    expect((await store.newest())?.index).toBe(1);
    await store.close();
    expect(MAX_SNAPSHOT_BYTES).toBe(4 * 1024 ** 3);
  });

  it('deletes leftover temp files at open', async () => {
    const dir = tempDir();
    const store = await SnapshotStore.open({ dir });
    await writeSnapshot(store, 3, 1, 100);
    await store.close();
    writeFileSync(join(dir, `${snapshotFileName(4, 1)}.tmp`), 'half a snapshot');
    const reopened = await SnapshotStore.open({ dir });
    expect(snapFiles(dir)).toEqual([snapshotFileName(3, 1)]);
    await reopened.close();
  });
});

describe('snapshot store – damaged files', () => {
  /** Writes snapshots 1, 2, 3 (keep 3), damages the newest with `damage`, returns what a reopened store says. */
  async function afterDamage(damage: (path: string) => void): Promise<{ newest: number | undefined; warnings: Array<Record<string, unknown>> }> {
    const dir = tempDir();
    const store = await SnapshotStore.open({ dir, keep: 3 });
    for (const index of [1, 2, 3]) await writeSnapshot(store, index, 1, 2000);
    await store.close();
    damage(join(dir, snapshotFileName(3, 1)));
    const { logger, lines } = capturingLogger();
    const reopened = await SnapshotStore.open({ dir, keep: 3, logger });
    const newest = (await reopened.newest())?.index;
    expect((await reopened.newest())?.index).toBe(newest);
    await reopened.close();
    return { newest, warnings: lines.filter((line) => line['level'] === 40) };
  }

  function rewrite(path: string, change: (file: Buffer) => void): void {
    const file = readFileSync(path);
    change(file);
    writeFileSync(path, file);
  }

  it('a flipped byte, a truncation and a wrong version are each refused with one warning naming the file and why', async () => {
    const cases: [(path: string) => void, RegExp][] = [
      [(path) => rewrite(path, (file) => void (file[1000]! ^= 0x10)), /checksum mismatch/],
      [(path) => truncateSync(path, 1500), /file is 1500 B and what should be its footer holds no length \(truncated or damaged\)/],
      [(path) => truncateSync(path, readFileSync(path).length - 1), /file is \d+ B, but its header and footer describe \d+ B \(truncated/],
      [(path) => rewrite(path, (file) => file.writeUInt32LE(SNAPSHOT_FORMAT_VERSION + 1, 4)), /format version 2; this build reads version 1/],
      [(path) => rewrite(path, (file) => void (file[file.length - 1]! ^= 1)), /checksum mismatch/],
    ];
    for (const [damage, reason] of cases) {
      const { newest, warnings } = await afterDamage(damage);
      expect(newest).toBe(2);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!['file']).toMatch(new RegExp(`${snapshotFileName(3, 1)}$`));
      expect(warnings[0]!['reason']).toMatch(reason);
      expect(warnings[0]!['msg']).toMatch(new RegExp(`^snapshot ${snapshotFileName(3, 1)} refused \\(.*\\); an older valid snapshot is used if there is one$`));
    }
  });

  it('a deleted newest file simply is not there', async () => {
    expect(await afterDamage((path) => unlinkSync(path))).toEqual({ newest: 2, warnings: [] });
  });

  it('property: after random flips, truncations and deletions, newest() is the newest intact snapshot', async () => {
    const damageArbitrary = fc.record({
      file: fc.nat(),
      kind: fc.constantFrom('flip' as const, 'truncate' as const, 'delete' as const),
      atBytes: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    });
    const snapshotArbitrary = fc.record({ payloadBytes: fc.integer({ min: 0, max: 6000 }), metadataBytes: fc.integer({ min: 0, max: 64 }) });
    await fc.assert(
      fc.asyncProperty(
        fc.array(snapshotArbitrary, { minLength: 1, maxLength: 6 }),
        fc.array(damageArbitrary, { maxLength: 6 }),
        fc.option(fc.integer({ min: 0, max: 70 }), { nil: undefined }),
        async (snapshots, damages, maxIndex) => {
          const dir = tempDir();
          const store = await SnapshotStore.open({ dir, keep: 10 });
          const written: SnapshotMeta[] = [];
          for (const [i, s] of snapshots.entries()) {
            written.push(await writeSnapshot(store, 10 * (i + 1), 1 + Math.floor(i / 2), s.payloadBytes, payloadOf(i, s.metadataBytes)));
          }
          await store.close();
          const original = new Map(written.map((meta) => [meta.fileName, readFileSync(join(dir, meta.fileName))]));
          for (const damage of damages) applyDamage(join(dir, written[damage.file % written.length]!.fileName), damage);
          const isIntact = (meta: SnapshotMeta): boolean => {
            const path = join(dir, meta.fileName);
            return existsSync(path) && readFileSync(path).equals(original.get(meta.fileName)!);
          };
          const limit = maxIndex ?? Number.MAX_SAFE_INTEGER;
          const expected = [...written].reverse().find((meta) => meta.index <= limit && isIntact(meta));

          const { logger, lines } = capturingLogger();
          const reopened = await SnapshotStore.open({ dir, keep: 10, logger });
          const newest = await reopened.newest(maxIndex);
          expect(newest?.index).toBe(expected?.index);
          if (expected !== undefined) expect((await readPayload(reopened, newest!)).equals(payloadOf(expected.index, expected.payloadBytes))).toBe(true);
          expect((await reopened.newest(maxIndex))?.index).toBe(expected?.index);
          await reopened.close();

          // One warning per damaged file that was looked at; none for an intact one.
          const warned = lines.filter((line) => line['level'] === 40).map((line) => String(line['file']));
          expect(new Set(warned).size).toBe(warned.length);
          for (const meta of written) {
            const path = join(dir, meta.fileName);
            const damaged = existsSync(path) && !isIntact(meta);
            if (!damaged) expect(warned).not.toContain(path);
            else if (meta.index > (expected?.index ?? 0) && meta.index <= limit) expect(warned).toContain(path);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

function applyDamage(path: string, damage: { kind: 'flip' | 'truncate' | 'delete'; atBytes: number; bit: number }): void {
  if (!existsSync(path)) return;
  const file = readFileSync(path);
  // An earlier truncation to 0 B leaves nothing to damage (and no length to take a modulo of).
  if (file.length === 0 && damage.kind !== 'delete') return;
  if (damage.kind === 'delete') unlinkSync(path);
  else if (damage.kind === 'truncate') truncateSync(path, damage.atBytes % file.length);
  else {
    file[damage.atBytes % file.length]! ^= 1 << damage.bit;
    writeFileSync(path, file);
  }
}

describe('snapshot store – readers', () => {
  it('a reader open on a snapshot keeps reading it after a newer write prunes it', async () => {
    const dir = tempDir();
    const store = await SnapshotStore.open({ dir, keep: 1 });
    const meta = await writeSnapshot(store, 1, 1, 10_000);
    const reader = (await store.openReader(1, 1))!;
    await writeSnapshot(store, 2, 1, 10_000);
    expect(snapFiles(dir)).toEqual([snapshotFileName(2, 1)]);
    expect(await store.openReader(1, 1)).toBeUndefined();
    const chunks: Buffer[] = [];
    for await (const chunk of reader.payload()) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(payloadOf(1, 10_000))).toBe(true);
    expect(reader.meta).toEqual(meta);
    await reader.close();
    await store.close();
  });
});
