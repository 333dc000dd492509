// The byte-level coders of the binary encodings: a produce request's messages
// (produce-messages.ts), which the leader copies into the commit log's produce entries
// (src/broker/produce-codec.ts), and consume queue records (src/broker/consume-queue-codec.ts).
//
// uint: unsigned LEB128, minimal, at most 2^53 - 1. str: uint byte length, then UTF-8.
// bytes: uint length, then the bytes. The reader refuses what would not re-encode to the same
// bytes (a longer uint than needed, invalid UTF-8, a field past the end) with a ShapeError
// naming the field.
//
// Plain functions over module state, one encoding and one decoding at a time: both are
// synchronous, and nothing they call encodes or decodes. Each encode starts with
// startWriting() and each decode with startReading(), so a throw half way leaves nothing that
// matters to the next one.
import { isUtf8 } from 'node:buffer';
import { assert } from '../util/assert.js';
import { fail } from './shape-error.js';

/** A uint of up to 2^53 - 1 takes at most 8 LEB128 bytes. */
const MAX_UINT_BYTES = 8;
/** A string of at most 42 UTF-16 units takes at most 126 UTF-8 bytes: its length fits one uint byte. */
const ONE_BYTE_LENGTH_MAX_CHARS = 42;
const SCRATCH_BYTES = 64 * 1024;
/** The scratch buffer is kept between encodes up to this size; a larger one (a big produce) goes. */
const MAX_KEPT_SCRATCH_BYTES = 1024 * 1024;

/**
 * Buffer's own UTF-8 coders, without write's and toString's argument handling (a fifth of the
 * cost of a short string): Node has them, its types do not list them.
 */
type Utf8Buffer = Buffer & { utf8Slice(start: number, end: number): string; utf8Write(value: string, offset: number, length?: number): number };

// --- writing: into one scratch buffer reused across encodes, then copied out -----------------

let scratch = Buffer.allocUnsafe(SCRATCH_BYTES) as Utf8Buffer;
/**
 * scratch.byteLength, kept apart (as sourceBytes is for the reader): in these functions V8 made
 * the typed array's length getter a call where a number is a load (encoding a one-message
 * produce 1.31 -> 1.15 µs).
 */
let scratchBytes = SCRATCH_BYTES;
let written = 0;

export function startWriting(): void {
  written = 0;
}

function room(bytes: number): void {
  if (written + bytes <= scratchBytes) return;
  const grown = Buffer.allocUnsafe(Math.max(2 * scratchBytes, written + bytes)) as Utf8Buffer;
  scratch.copy(grown, 0, 0, written);
  scratch = grown;
  scratchBytes = grown.byteLength;
}

export function putU8(value: number): void {
  room(1);
  scratch[written++] = value;
}

export function putUint(value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'a uint is a safe whole number');
  room(MAX_UINT_BYTES);
  // 32-bit arithmetic for the low 32 bits: far cheaper than the division the bits above need.
  while (value > 0xffffffff) {
    scratch[written++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  while (value >= 0x80) {
    scratch[written++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  scratch[written++] = value;
}

/** A str. The caller made sure the string is well-formed Unicode (UTF-8 cannot carry a lone surrogate unchanged). */
export function putStr(value: string): void {
  if (value.length <= ONE_BYTE_LENGTH_MAX_CHARS) {
    room(1 + 3 * value.length);
    // ASCII (nearly every id and name) byte by byte: a call to the native coder costs more.
    const start = written + 1;
    let i = 0;
    for (; i < value.length; i++) {
      const code = value.charCodeAt(i);
      if (code >= 0x80) break;
      scratch[start + i] = code;
    }
    const bytes = i === value.length ? i : scratch.utf8Write(value, start);
    scratch[written] = bytes;
    written = start + bytes;
    return;
  }
  const bytes = Buffer.byteLength(value);
  putUint(bytes);
  room(bytes);
  written += scratch.utf8Write(value, written, bytes);
}

/**
 * A str that may hold lone surrogates, losslessly (WTF-8: a lone surrogate as the three bytes
 * UTF-8 would give its code point, which no UTF-8 decoder accepts): read back with readWtf8.
 */
export function putWtf8(value: string): void {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    let code = value.charCodeAt(i);
    const next = value.charCodeAt(i + 1);
    if (code >= 0xd800 && code < 0xdc00 && next >= 0xdc00 && next < 0xe000) {
      code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
      i += 1;
    }
    if (code < 0x80) bytes.push(code);
    else if (code < 0x800) bytes.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    else if (code < 0x10000) bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    else bytes.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 0x3f), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
  }
  putBytes(Uint8Array.from(bytes));
}

/** A length-prefixed field. */
export function putBytes(value: Uint8Array): void {
  putUint(value.byteLength);
  putRaw(value);
}

/** Bytes as they are, with no length in front (an encoding delimited already). */
export function putRaw(value: Uint8Array): void {
  const bytes = value.byteLength;
  room(bytes);
  scratch.set(value, written);
  written += bytes;
}

/** Starts a field with its length in front (endLengthPrefixed ends it), keeping one byte for the length. */
export function startLengthPrefixed(): number {
  room(1);
  return ++written;
}

/** Writes the length of the field started at `start`, moving its bytes on when the length needs more than a byte. */
export function endLengthPrefixed(start: number): void {
  const length = written - start;
  if (length < 0x80) {
    scratch[start - 1] = length;
    return;
  }
  let lengthBytes = 1;
  for (let rest = length; rest >= 0x80; rest = Math.floor(rest / 0x80)) lengthBytes += 1;
  room(lengthBytes - 1);
  scratch.copyWithin(start - 1 + lengthBytes, start, written);
  written = start - 1;
  putUint(length);
  written += length;
}

/**
 * The bytes written, copied out, as a plain Uint8Array view (what every other command's
 * Entry.data is). Below 4 KiB the copy is a slice of Node's shared buffer pool: a buffer of
 * its own cost a one-message produce 1 µs more (2.3 instead of 1.2 µs to encode). Readers of
 * entry data honour byteOffset and byteLength, as for any view; under load a produce's bytes
 * live only until the batcher copies them into its produceBatch entry (a buffer of its own).
 */
export function takeWritten(): Uint8Array {
  const out = Buffer.allocUnsafe(written);
  scratch.copy(out, 0, 0, written);
  releaseScratch();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The bytes written, in a buffer of their own: for bytes kept long, which a slice of the shared pool would keep a whole chunk of it alive for. */
export function takeWrittenOwned(): Buffer {
  const out = Buffer.allocUnsafeSlow(written);
  scratch.copy(out, 0, 0, written);
  releaseScratch();
  return out;
}

function releaseScratch(): void {
  if (scratchBytes > MAX_KEPT_SCRATCH_BYTES) {
    scratch = Buffer.allocUnsafe(SCRATCH_BYTES) as Utf8Buffer;
    scratchBytes = SCRATCH_BYTES;
  }
}

// --- reading: the cursor moves past each field read ------------------------------------------

const EMPTY = Buffer.alloc(0) as Utf8Buffer;
/** The bytes being decoded, as a Buffer for its UTF-8 decoder; what they are, for "… ends early". */
let source: Utf8Buffer = EMPTY;
/** source.byteLength, .buffer and .byteOffset (getters, as scratchBytes says). */
let sourceBytes = 0;
let sourceArrayBuffer: ArrayBufferLike = EMPTY.buffer;
let sourceByteOffset = 0;
let subject = '';
let cursor = 0;

/** Reads `data` from `at`; `what` names it in problems ("the command" ends early). */
export function startReading(data: Uint8Array, at: number, what: string): void {
  source = (Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)) as Utf8Buffer;
  sourceBytes = source.byteLength;
  sourceArrayBuffer = source.buffer;
  sourceByteOffset = source.byteOffset;
  subject = what;
  cursor = at;
}

/** Lets go of the bytes read (a big entry is not kept alive until the next decode). */
export function stopReading(): void {
  source = EMPTY;
  sourceBytes = 0;
  sourceArrayBuffer = EMPTY.buffer;
  sourceByteOffset = 0;
}

export function readPosition(): number {
  return cursor;
}

export function readTo(at: number): void {
  cursor = at;
}

/** Bytes left after the cursor. */
export function readRemaining(): number {
  return sourceBytes - cursor;
}

export function readU8(what: string): number {
  if (cursor >= sourceBytes) fail(`${what}: ${subject} ends early`);
  return source[cursor++]!;
}

export function readUint(what: string): number {
  const data = source;
  let at = cursor;
  if (at >= sourceBytes) fail(`${what}: ${subject} ends early`);
  let byte = data[at++]!;
  if (byte < 0x80) {
    cursor = at;
    return byte;
  }
  let value = byte & 0x7f;
  let scale = 0x80;
  for (let i = 1; ; i++) {
    if (i === MAX_UINT_BYTES) fail(`${what} is a number longer than ${MAX_UINT_BYTES} bytes`);
    if (at >= sourceBytes) fail(`${what}: ${subject} ends early`);
    byte = data[at++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) break;
    scale *= 0x80;
  }
  if (byte === 0) fail(`${what} is a longer number than it needs`);
  if (value > Number.MAX_SAFE_INTEGER) fail(`${what} is more than ${Number.MAX_SAFE_INTEGER}`);
  cursor = at;
  return value;
}

export function readStr(what: string): string {
  const end = readFieldEnd(what);
  const value = source.utf8Slice(cursor, end);
  // The decoder replaces invalid UTF-8 with U+FFFD: only a string holding one can be invalid.
  if (value.includes('\uFFFD') && !isUtf8(source.subarray(cursor, end))) fail(`${what} is not valid UTF-8`);
  cursor = end;
  return value;
}

/** A str putWtf8 wrote (its sequences as putWtf8 writes them; anything else is refused). */
export function readWtf8(what: string): string {
  const end = readFieldEnd(what);
  let value = '';
  /** Whether the last code point read was a high surrogate: a low one after it would be a pair, which putWtf8 writes in four bytes. */
  let afterHighSurrogate = false;
  while (cursor < end) {
    const lead = source[cursor]!;
    const length = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (cursor + length > end || (lead >= 0x80 && lead < 0xc2) || lead > 0xf4) fail(`${what} is not valid WTF-8`);
    let code = length === 1 ? lead : lead & (0xff >> (length + 1));
    for (let i = 1; i < length; i++) {
      const byte = source[cursor + i]!;
      if ((byte & 0xc0) !== 0x80) fail(`${what} is not valid WTF-8`);
      code = (code << 6) | (byte & 0x3f);
    }
    if (code < MIN_CODE_POINT_OF_LENGTH[length]! || code > 0x10ffff) fail(`${what} is not valid WTF-8`);
    if (afterHighSurrogate && code >= 0xdc00 && code < 0xe000) fail(`${what} is not valid WTF-8`);
    afterHighSurrogate = code >= 0xd800 && code < 0xdc00;
    value += String.fromCodePoint(code);
    cursor += length;
  }
  return value;
}

/** The least code point a sequence of 1, 2, 3 or 4 bytes may carry (shorter forms are refused). */
const MIN_CODE_POINT_OF_LENGTH = [0, 0, 0x80, 0x800, 0x10000];

/** A plain Uint8Array view into the bytes read (no copy): they are never mutated. */
export function readBytes(what: string): Uint8Array {
  const end = readFieldEnd(what);
  const bytes = new Uint8Array(sourceArrayBuffer, sourceByteOffset + cursor, end - cursor);
  cursor = end;
  return bytes;
}

/** Reads a length; the end of the field it prefixes. */
export function readFieldEnd(what: string): number {
  const length = readUint(what);
  if (length > sourceBytes - cursor) fail(`${what}: ${subject} ends early`);
  return cursor + length;
}

/** Whether the `length` bytes read at `a` and at `b` are equal (a loop: it serves short names). */
export function sameBytesRead(a: number, b: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (source[a + i] !== source[b + i]) return false;
  return true;
}
