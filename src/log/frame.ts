// On-disk format of log segments: the segment header and the entry frame. Pure encode/decode
// helpers over Buffers; no I/O. Every field is little endian.
//
// Segment file `<first index, 20 digits>.seg`:
//   [segment header, 32 B][frame][frame]...[zeros up to the preallocated size]
// Segment header (SEGMENT_HEADER_BYTES):
//   0 u32 crc32 of bytes [4, 32)   4 u32 SEGMENT_MAGIC   8 u32 FORMAT_VERSION   12 u32 zero
//   16 u64 first index of the segment                     24 u64 term of (first index - 1)
// Frame (FRAME_HEADER_BYTES + payload):
//   0 u32 crc32 of bytes [4, 32 + payloadBytes)   4 u32 FRAME_MAGIC   8 u32 payloadBytes
//   12 u8 FORMAT_VERSION   13 u8 entry type   14 u16 zero   16 u64 index   24 u64 term
// The checksum covers the whole header (length, index, term, type) and the payload, so no
// field can be silently altered. The magic lets recovery find later frames in a damaged
// tail (see recovery.ts) with a fast byte search.
import { crc32 } from 'node:zlib';
import { assert } from '../util/assert.js';
import { type Entry, EntryType } from '../raft/types.js';

export const FORMAT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 32;
export const FRAME_HEADER_BYTES = 32;
/** "LQMS" and "LQMF" read as little-endian u32. */
export const SEGMENT_MAGIC = 0x534d514c;
export const FRAME_MAGIC = 0x464d514c;
export const FRAME_MAGIC_BYTES: Buffer = Buffer.from([0x4c, 0x51, 0x4d, 0x46]);
/** Largest payload a frame may declare; a larger length field is damage, not data. */
export const MAX_ENTRY_PAYLOAD_BYTES = 64 * 1024 * 1024;

const TWO_POW_32 = 2 ** 32;
/** High word limit that keeps a u64 within Number.MAX_SAFE_INTEGER. */
const MAX_SAFE_HIGH_WORD = 2 ** 21;

export function writeU64(buf: Buffer, offset: number, value: number): void {
  assert(Number.isSafeInteger(value), () => `u64 field ${value} is not a safe integer`);
  assert(value >= 0, () => `u64 field ${value} is negative`);
  buf.writeUInt32LE(value >>> 0, offset);
  buf.writeUInt32LE(Math.floor(value / TWO_POW_32), offset + 4);
}

/** Returns -1 when the value cannot be a safe integer (damage). */
export function readU64(buf: Buffer, offset: number): number {
  const high = buf.readUInt32LE(offset + 4);
  if (high >= MAX_SAFE_HIGH_WORD) return -1;
  return high * TWO_POW_32 + buf.readUInt32LE(offset);
}

export function frameBytes(payloadBytes: number): number {
  return FRAME_HEADER_BYTES + payloadBytes;
}

/** Header bytes [4, 32) of the frame being encoded: checksummed apart so the hot path allocates no views. */
const encodeHeader = Buffer.alloc(FRAME_HEADER_BYTES - 4);

/** Writes one entry as a frame at `offset`; returns the frame's size in bytes. */
export function encodeFrame(buf: Buffer, offset: number, entry: Entry): number {
  const payloadBytes = entry.data.byteLength;
  assert(payloadBytes <= MAX_ENTRY_PAYLOAD_BYTES, () => `entry ${entry.index} payload ${payloadBytes} B exceeds ${MAX_ENTRY_PAYLOAD_BYTES} B`);
  assert(entry.type === EntryType.Noop || entry.type === EntryType.Normal, () => `entry ${entry.index} has unknown type ${entry.type}`);
  const end = offset + FRAME_HEADER_BYTES + payloadBytes;
  assert(end <= buf.length, 'frame fits the encode buffer');
  // Offsets below are those of the frame minus 4: the checksum field is not in encodeHeader.
  encodeHeader.writeUInt32LE(FRAME_MAGIC, 0);
  encodeHeader.writeUInt32LE(payloadBytes, 4);
  encodeHeader[8] = FORMAT_VERSION;
  encodeHeader[9] = entry.type;
  encodeHeader.writeUInt16LE(0, 10);
  writeU64(encodeHeader, 12, entry.index);
  writeU64(encodeHeader, 20, entry.term);
  buf.writeUInt32LE(crc32(entry.data, crc32(encodeHeader)), offset);
  buf.set(encodeHeader, offset + 4);
  buf.set(entry.data, offset + FRAME_HEADER_BYTES);
  return end - offset;
}

/** Header fields of a decoded frame; one instance is reused across a scan to avoid garbage. */
export interface FrameHeader {
  index: number;
  term: number;
  type: EntryType;
  payloadBytes: number;
}

export function newFrameHeader(): FrameHeader {
  return { index: 0, term: 0, type: EntryType.Noop, payloadBytes: 0 };
}

/**
 * Why the bytes at an offset are not a valid frame. `eof`: no bytes left. `zero`: the header
 * (or the short remainder) is all zeros — unwritten space. The rest are damage or a torn write.
 */
export type FrameProblem = 'eof' | 'zero' | 'short-header' | 'bad-magic' | 'bad-version' | 'bad-type' | 'bad-length' | 'short-payload' | 'bad-checksum' | 'bad-fields';

function isZero(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Decodes and verifies the frame at `offset` within buf[0, limit). Fills `out` and returns
 * null when the frame is valid (checksum included); returns the problem otherwise.
 */
export function decodeFrame(buf: Buffer, offset: number, limit: number, out: FrameHeader): FrameProblem | null {
  assert(limit <= buf.length, 'decode limit within buffer');
  if (offset >= limit) return 'eof';
  const headerEnd = offset + FRAME_HEADER_BYTES;
  if (headerEnd > limit) return isZero(buf, offset, limit) ? 'zero' : 'short-header';
  if (buf.readUInt32LE(offset + 4) !== FRAME_MAGIC) return isZero(buf, offset, headerEnd) ? 'zero' : 'bad-magic';
  if (buf[offset + 12] !== FORMAT_VERSION) return 'bad-version';
  const type = buf[offset + 13];
  if (type !== EntryType.Noop && type !== EntryType.Normal) return 'bad-type';
  const payloadBytes = buf.readUInt32LE(offset + 8);
  if (payloadBytes > MAX_ENTRY_PAYLOAD_BYTES) return 'bad-length';
  const end = headerEnd + payloadBytes;
  if (end > limit) return 'short-payload';
  if (crc32(buf.subarray(offset + 4, end)) !== buf.readUInt32LE(offset)) return 'bad-checksum';
  const index = readU64(buf, offset + 16);
  const term = readU64(buf, offset + 24);
  // Not an assertion: recovery also probes inside payloads, where user bytes may mimic a frame.
  if (index < 1 || term < 0) return 'bad-fields';
  out.index = index;
  out.term = term;
  out.type = type;
  out.payloadBytes = payloadBytes;
  return null;
}

export interface SegmentHeader {
  firstIndex: number;
  prevTerm: number;
}

export function encodeSegmentHeader(header: SegmentHeader): Buffer {
  assert(header.firstIndex >= 1, () => `segment first index ${header.firstIndex} < 1`);
  assert(header.prevTerm >= 0, () => `segment prev term ${header.prevTerm} < 0`);
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  buf.writeUInt32LE(SEGMENT_MAGIC, 4);
  buf.writeUInt32LE(FORMAT_VERSION, 8);
  writeU64(buf, 16, header.firstIndex);
  writeU64(buf, 24, header.prevTerm);
  buf.writeUInt32LE(crc32(buf.subarray(4, SEGMENT_HEADER_BYTES)), 0);
  return buf;
}

/** Returns the header, or a reason string when the first 32 bytes are not a valid header. */
export function decodeSegmentHeader(buf: Buffer): SegmentHeader | string {
  if (buf.length < SEGMENT_HEADER_BYTES) return `file is ${buf.length} B, shorter than the ${SEGMENT_HEADER_BYTES} B segment header`;
  if (buf.readUInt32LE(4) !== SEGMENT_MAGIC) return 'bad segment magic';
  if (crc32(buf.subarray(4, SEGMENT_HEADER_BYTES)) !== buf.readUInt32LE(0)) return 'bad segment header checksum';
  if (buf.readUInt32LE(8) !== FORMAT_VERSION) return `unsupported segment format version ${buf.readUInt32LE(8)}`;
  const firstIndex = readU64(buf, 16);
  const prevTerm = readU64(buf, 24);
  if (firstIndex < 1 || prevTerm < 0) return 'segment header fields out of range';
  return { firstIndex, prevTerm };
}
