// Request signatures on the client port (RocketMQ's ACL model: an access key names the user, a
// secret key proves it). The client signs every request with HMAC-SHA256 under its secret key
// over a canonical encoding of (access key, op, timestamp, nonce, SHA-256 of the request's
// encoded bytes); the node recomputes it and compares in constant time. Signing the digest, not
// the bytes, means a large produce is hashed once. The timestamp bounds how long a captured
// request stays usable (MAX_CLOCK_SKEW_MS either way of the node's clock) and the nonce, which
// ReplayGuard remembers per access key, refuses an exact replay inside that window.
// This module is pure computation (crypto, no I/O), shared by the client and the node.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { assert } from '../util/assert.js';

export interface Credentials {
  readonly accessKey: string;
  readonly secretKey: string;
}

/** What a signed request carries besides its bytes (the envelope's `auth` map). */
export interface RequestAuth {
  readonly accessKey: string;
  /** The client's wall clock when it signed, epoch ms (compared across machines, so wall time). */
  readonly timestampMs: number;
  /** Unique per request of one access key within the skew window. */
  readonly nonce: string;
  /** HMAC-SHA256, SIGNATURE_BYTES long. */
  readonly signature: Uint8Array;
}

/** A request's credentials as the transport found them: signed bytes, a malformed envelope, or none. */
export type PresentedCredentials = (RequestAuth & { readonly payload: Uint8Array }) | { readonly malformed: string } | undefined;

/** Names the canonical encoding below; a new encoding gets a new name. */
export const SIGNATURE_SCHEME = 'LMQ1-HMAC-SHA256';
export const SIGNATURE_BYTES = 32;
/** How far a request's timestamp may be from the node's clock, either way (RocketMQ-like). */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
export const MAX_NONCE_LENGTH = 64;
export const MAX_ACCESS_KEY_LENGTH = 64;
/**
 * Nonces remembered per access key. At the bound the oldest is forgotten and the key's
 * timestamp floor rises to its timestamp, so a forgotten nonce can never be replayed: memory
 * stays bounded (~100 B a nonce, 10 MB per busy key) and the door stays shut; the cost is that
 * at very high request rates a client whose clock lags the others by more than
 * (bound / request rate) — 20 s at 5,000 requests/s — is refused until its clock is fixed.
 */
export const MAX_NONCES_PER_ACCESS_KEY = 100_000;

/** The op a request's signature covers: its body's `op`, or '' when it has none. */
export function signedOp(body: unknown): string {
  if (typeof body !== 'object' || body === null) return '';
  const op = (body as { op?: unknown }).op;
  return typeof op === 'string' ? op : '';
}

export function payloadDigest(payload: Uint8Array): Buffer {
  return createHash('sha256').update(payload).digest();
}

/**
 * The bytes that are signed: the scheme, then each field as `<length>:<value>\n`, so no two
 * different field tuples encode alike whatever characters the fields hold. `audience` is the
 * node the request is sent to: each node keeps its own nonces, so a request captured on its
 * way to one node must not be accepted by another (after a leader change, say).
 */
export function stringToSign(accessKey: string, op: string, timestampMs: number, nonce: string, digest: Uint8Array, audience: string): Buffer {
  assert(digest.byteLength === 32, 'a SHA-256 digest is 32 bytes');
  const fields = [accessKey, op, String(timestampMs), nonce, Buffer.from(digest).toString('hex'), audience];
  return Buffer.from(`${SIGNATURE_SCHEME}\n${fields.map((f) => `${Buffer.byteLength(f)}:${f}\n`).join('')}`, 'utf8');
}

export function sign(secretKey: string, accessKey: string, op: string, timestampMs: number, nonce: string, digest: Uint8Array, audience: string): Buffer {
  const signature = createHmac('sha256', secretKey).update(stringToSign(accessKey, op, timestampMs, nonce, digest, audience)).digest();
  assert(signature.byteLength === SIGNATURE_BYTES, 'HMAC-SHA256 is 32 bytes');
  return signature;
}

/** Whether `auth.signature` is the secret key's signature of these fields for node `audience` (constant time). */
export function signatureMatches(secretKey: string, auth: RequestAuth, op: string, digest: Uint8Array, audience: string): boolean {
  if (auth.signature.byteLength !== SIGNATURE_BYTES) return false;
  const expected = sign(secretKey, auth.accessKey, op, auth.timestampMs, auth.nonce, digest, audience);
  return timingSafeEqual(expected, auth.signature);
}

/**
 * One access key's remembered nonces: a set for lookups and a binary min-heap of (timestamp,
 * nonce) for forgetting the oldest-STAMPED first. Not arrival order: a client whose clock runs
 * minutes ahead would then sit at the front, hold every later nonce in memory past the window,
 * and once the bound forced it out, raise the floor minutes into the future — refusing every
 * other client of the key until the clock caught up (found in review).
 */
class KeyNonces {
  readonly seen = new Set<string>();
  private readonly timestampsMs: number[] = [];
  private readonly nonces: string[] = [];
  /** Requests stamped at or before this are refused: their nonces may have been forgotten. */
  floorMs = -Infinity;

  get size(): number {
    return this.nonces.length;
  }

  add(nonce: string, timestampMs: number): void {
    this.seen.add(nonce);
    this.timestampsMs.push(timestampMs);
    this.nonces.push(nonce);
    for (let i = this.size - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (this.timestampsMs[parent]! <= this.timestampsMs[i]!) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  oldestTimestampMs(): number | undefined {
    return this.size === 0 ? undefined : this.timestampsMs[0];
  }

  /** Forgets the oldest-stamped nonce, raising the floor to its timestamp. */
  forgetOldest(): void {
    assert(this.size > 0, 'forgetOldest needs a nonce');
    this.seen.delete(this.nonces[0]!);
    this.floorMs = Math.max(this.floorMs, this.timestampsMs[0]!);
    const lastTimestampMs = this.timestampsMs.pop()!;
    const lastNonce = this.nonces.pop()!;
    if (this.size > 0) {
      this.timestampsMs[0] = lastTimestampMs;
      this.nonces[0] = lastNonce;
      for (let i = 0; ; ) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < this.size && this.timestampsMs[left]! < this.timestampsMs[smallest]!) smallest = left;
        if (right < this.size && this.timestampsMs[right]! < this.timestampsMs[smallest]!) smallest = right;
        if (smallest === i) break;
        this.swap(i, smallest);
        i = smallest;
      }
    }
    assert(this.seen.size === this.size, 'the set and the heap hold the same nonces');
  }

  private swap(a: number, b: number): void {
    [this.timestampsMs[a], this.timestampsMs[b]] = [this.timestampsMs[b]!, this.timestampsMs[a]!];
    [this.nonces[a], this.nonces[b]] = [this.nonces[b]!, this.nonces[a]!];
  }
}

/**
 * Refuses a request whose timestamp is outside ±maxClockSkewMs of the node's clock, or whose
 * nonce this access key already used within the window. Call it only after the signature was
 * verified, so only real users' requests take memory.
 */
export class ReplayGuard {
  private readonly keys = new Map<string, KeyNonces>();

  constructor(
    private readonly maxNoncesPerAccessKey = MAX_NONCES_PER_ACCESS_KEY,
    private readonly maxClockSkewMs = MAX_CLOCK_SKEW_MS,
  ) {
    assert(Number.isSafeInteger(maxNoncesPerAccessKey) && maxNoncesPerAccessKey >= 1, 'maxNoncesPerAccessKey >= 1');
    assert(maxClockSkewMs >= 1, 'maxClockSkewMs >= 1');
  }

  /** Records the nonce and returns null, or says why the request is refused (recording nothing). */
  admit(accessKey: string, timestampMs: number, nonce: string, nowMs: number): string | null {
    const skewMs = timestampMs - nowMs;
    if (Math.abs(skewMs) > this.maxClockSkewMs) {
      return `its timestamp is ${Math.round(skewMs / 1000)} s off the node's clock (at most ${this.maxClockSkewMs / 1000} s allowed); check the client's clock`;
    }
    let key = this.keys.get(accessKey);
    if (key === undefined) {
      key = new KeyNonces();
      this.keys.set(accessKey, key);
    }
    // Nonces stamped before the window are refused by the timestamp check; they need no memory.
    for (let oldest = key.oldestTimestampMs(); oldest !== undefined && oldest < nowMs - this.maxClockSkewMs; oldest = key.oldestTimestampMs()) {
      key.forgetOldest();
    }
    if (key.seen.has(nonce)) return 'its nonce was already used (a replayed request)';
    if (timestampMs <= key.floorMs) {
      return `it is stamped before the newest forgotten nonce of this access key (over ${this.maxNoncesPerAccessKey} requests in the window); check the client's clock`;
    }
    if (key.size >= this.maxNoncesPerAccessKey) key.forgetOldest();
    key.add(nonce, timestampMs);
    assert(key.size <= this.maxNoncesPerAccessKey, 'nonces per access key stay bounded');
    return null;
  }

  /** Drops the state of access keys no longer in the ACL (their requests are refused anyway). */
  retainOnly(accessKeys: ReadonlySet<string>): void {
    for (const accessKey of [...this.keys.keys()]) if (!accessKeys.has(accessKey)) this.keys.delete(accessKey);
  }
}
