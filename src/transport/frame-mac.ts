// Authentication of the frames on one peer connection, in one direction, after the handshake
// (peer-handshake.ts derives the key). Each frame is followed on the wire by a 16-byte tag,
// HMAC-SHA256(key, sequence ‖ header ‖ payload) truncated: the sequence (the frame's position
// on this connection, never sent) makes a dropped, repeated or reordered frame fail like a
// forged one, and the per-connection key makes a frame from another connection fail too.
// One MAC per frame, however many Raft entries it carries: the cost is one HMAC setup (about
// a microsecond) plus SHA-256 over the bytes, which the sender already paid to encode them.

import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { assert } from '../util/assert.js';

/** 128 bits: forging one needs 2^128 tries, and a connection closes on its first failure. */
export const FRAME_TAG_BYTES = 16;
const SEQUENCE_BYTES = 8;

export class FrameMac {
  private readonly key: KeyObject;
  /** The next frame's position on this connection. */
  private sequence = 0;

  constructor(key: Uint8Array) {
    assert(key.length >= 16, 'a frame MAC key has at least 128 bits');
    this.key = createSecretKey(key);
  }

  /** The tag of the next frame, whose bytes are `parts` in order; advances the sequence. */
  next(...parts: Uint8Array[]): Buffer {
    assert(Number.isSafeInteger(this.sequence), 'frame sequence within a safe integer');
    const sequence = Buffer.allocUnsafe(SEQUENCE_BYTES);
    sequence.writeUInt32BE(Math.floor(this.sequence / 2 ** 32), 0);
    sequence.writeUInt32BE(this.sequence >>> 0, 4);
    this.sequence += 1;
    const hmac = createHmac('sha256', this.key).update(sequence);
    for (const part of parts) hmac.update(part);
    const tag = hmac.digest().subarray(0, FRAME_TAG_BYTES);
    assert(tag.length === FRAME_TAG_BYTES, 'a truncated SHA-256 tag');
    return tag;
  }

  /** Whether `tag` is the next frame's tag (constant time); advances the sequence either way. */
  verifyNext(tag: Uint8Array, ...parts: Uint8Array[]): boolean {
    const expected = this.next(...parts);
    return tag.length === expected.length && timingSafeEqual(tag, expected);
  }
}
