// Request signatures and the replay guard (src/security/signature.ts): a signature verifies
// only for exactly the fields it was made over, and a request is admitted once per nonce, only
// inside the clock-skew window, with bounded memory that never readmits a forgotten nonce.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_CLOCK_SKEW_MS, payloadDigest, ReplayGuard, type RequestAuth, sign, signatureMatches, stringToSign } from '../src/security/signature.js';

interface Signed {
  secretKey: string;
  accessKey: string;
  op: string;
  timestampMs: number;
  nonce: string;
  payload: Uint8Array;
  /** The node the request is addressed to. */
  audience: string;
}

const signedArb = fc.record({
  secretKey: fc.string({ minLength: 8, maxLength: 40 }),
  accessKey: fc.string({ minLength: 1, maxLength: 64 }),
  op: fc.string({ maxLength: 20 }),
  timestampMs: fc.integer({ min: 0, max: 2 ** 45 }),
  nonce: fc.string({ minLength: 1, maxLength: 64 }),
  payload: fc.uint8Array({ maxLength: 300 }),
  audience: fc.string({ minLength: 1, maxLength: 32 }),
});

function authOf(s: Signed): RequestAuth {
  return { accessKey: s.accessKey, timestampMs: s.timestampMs, nonce: s.nonce, signature: sign(s.secretKey, s.accessKey, s.op, s.timestampMs, s.nonce, payloadDigest(s.payload), s.audience) };
}

function verifies(secretKey: string, auth: RequestAuth, op: string, payload: Uint8Array, audience: string): boolean {
  return signatureMatches(secretKey, auth, op, payloadDigest(payload), audience);
}

/** One signed field changed: which, and to what (always a different value). */
const tamperArb = fc.oneof(
  // Letters: HMAC pads a short key with zero bytes, so "k" and "k\0" are one key — which is why
  // the ACL file refuses control characters in a secret key.
  fc.record({ field: fc.constant('secretKey' as const), text: fc.stringMatching(/^[a-z]{1,8}$/) }),
  fc.record({ field: fc.constant('accessKey' as const), text: fc.string({ minLength: 1, maxLength: 8 }) }),
  fc.record({ field: fc.constant('op' as const), text: fc.string({ minLength: 1, maxLength: 8 }) }),
  fc.record({ field: fc.constant('nonce' as const), text: fc.string({ minLength: 1, maxLength: 8 }) }),
  // A request captured on its way to one node, presented to another.
  fc.record({ field: fc.constant('audience' as const), text: fc.string({ minLength: 1, maxLength: 8 }) }),
  fc.record({ field: fc.constant('timestampMs' as const), delta: fc.integer({ min: 1, max: 10 ** 9 }) }),
  fc.record({ field: fc.constant('payload' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ field: fc.constant('payloadLength' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
  fc.record({ field: fc.constant('signature' as const), at: fc.nat(31), xor: fc.integer({ min: 1, max: 255 }) }),
);

describe('security – request signatures', () => {
  it('verifies a request exactly as signed', () => {
    fc.assert(fc.property(signedArb, (s) => verifies(s.secretKey, authOf(s), s.op, s.payload, s.audience)));
  });

  it('refuses any change to a signed field, the payload, the signature or the secret key', () => {
    fc.assert(
      fc.property(signedArb, tamperArb, (s, t) => {
        const auth = authOf(s);
        let secretKey = s.secretKey;
        let op = s.op;
        let payload = s.payload;
        let audience = s.audience;
        let presented: RequestAuth = auth;
        switch (t.field) {
          case 'secretKey': secretKey = s.secretKey + t.text; break;
          case 'accessKey': presented = { ...auth, accessKey: s.accessKey + t.text }; break;
          case 'op': op = s.op + t.text; break;
          case 'nonce': presented = { ...auth, nonce: s.nonce + t.text }; break;
          case 'audience': audience = s.audience + t.text; break;
          case 'timestampMs': presented = { ...auth, timestampMs: s.timestampMs + t.delta }; break;
          case 'payload': {
            if (s.payload.length === 0) return true; // nothing to flip; payloadLength covers it
            payload = Uint8Array.from(s.payload);
            payload[t.at % payload.length]! ^= t.xor;
            break;
          }
          case 'payloadLength': payload = Buffer.concat([s.payload, t.extra]); break;
          case 'signature': {
            const signature = Uint8Array.from(auth.signature);
            signature[t.at]! ^= t.xor;
            presented = { ...auth, signature };
            break;
          }
        }
        expect(verifies(secretKey, presented, op, payload, audience)).toBe(false);
      }),
    );
  });

  it('encodes fields unambiguously: moving a character between two fields changes what is signed', () => {
    const digest = payloadDigest(Buffer.from('x'));
    expect(stringToSign('ab', 'c', 1, 'n', digest, 'n1').equals(stringToSign('a', 'bc', 1, 'n', digest, 'n1'))).toBe(false);
    expect(stringToSign('a\n1:b', 'c', 1, 'n', digest, 'n1').equals(stringToSign('a', 'b\n1:c', 1, 'n', digest, 'n1'))).toBe(false);
  });

  it('refuses a signature of the wrong length without throwing', () => {
    const s = { secretKey: 'secret-key', accessKey: 'k', op: 'status', timestampMs: 1, nonce: 'n', payload: Buffer.from('p'), audience: 'n1' };
    expect(verifies(s.secretKey, { ...authOf(s), signature: new Uint8Array(16) }, s.op, s.payload, s.audience)).toBe(false);
  });
});

describe('security – replay guard', () => {
  const now = 1_700_000_000_000;

  it('admits a nonce once, and refuses its replay', () => {
    const guard = new ReplayGuard();
    expect(guard.admit('shop', now, 'n1', now)).toBeNull();
    expect(guard.admit('shop', now, 'n1', now + 10)).toMatch(/already used/);
    // Nonces are per access key: another user may happen to use the same one.
    expect(guard.admit('billing', now, 'n1', now)).toBeNull();
  });

  it('refuses timestamps beyond the clock-skew window, either way', () => {
    const guard = new ReplayGuard();
    expect(guard.admit('shop', now - MAX_CLOCK_SKEW_MS - 1, 'old', now)).toMatch(/off the node's clock/);
    expect(guard.admit('shop', now + MAX_CLOCK_SKEW_MS + 1, 'future', now)).toMatch(/off the node's clock/);
    expect(guard.admit('shop', now - MAX_CLOCK_SKEW_MS, 'edge', now)).toBeNull();
  });

  it('stays within its bound, and a forgotten nonce is never admitted again', () => {
    const guard = new ReplayGuard(3);
    for (let i = 0; i < 3; i++) expect(guard.admit('shop', now + i, `n${i}`, now + i)).toBeNull();
    // The fourth forgets n0 and raises the floor to its timestamp.
    expect(guard.admit('shop', now + 3, 'n3', now + 3)).toBeNull();
    expect(guard.admit('shop', now, 'n0', now + 4)).toMatch(/forgotten nonce/);
    expect(guard.admit('shop', now + 1, 'n1', now + 4)).toMatch(/already used/);
    expect(guard.admit('shop', now + 4, 'n4', now + 4)).toBeNull();
  });

  it('forgets nonces whose timestamps left the window, and the window refuses their replay', () => {
    const guard = new ReplayGuard(10);
    expect(guard.admit('shop', now, 'early', now)).toBeNull();
    const later = now + MAX_CLOCK_SKEW_MS + 1;
    expect(guard.admit('shop', later, 'late', later)).toBeNull();
    expect(guard.admit('shop', now, 'early', later)).toMatch(/off the node's clock/);
  });

  it('a client whose clock runs minutes ahead does not lock out the key\'s other clients', () => {
    const guard = new ReplayGuard(100);
    const ahead = now + MAX_CLOCK_SKEW_MS - 1_000;
    expect(guard.admit('shop', ahead, 'fast-0', now)).toBeNull();
    // Well over the bound of requests from clients on time: the oldest-stamped are forgotten
    // first, so the floor stays at their timestamps, never jumps to the fast client's.
    for (let i = 0; i < 300; i++) expect(guard.admit('shop', now + i, `on-time-${i}`, now + i)).toBeNull();
    expect(guard.admit('shop', ahead, 'fast-0', now + 300)).toMatch(/already used/);
  });

  it('forgets nonces oldest-stamped first whatever their arrival order (model check)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1_000 }), { minLength: 1, maxLength: 200 }), fc.integer({ min: 1, max: 20 }), (offsets, bound) => {
        const guard = new ReplayGuard(bound);
        const model: number[] = []; // timestamps remembered
        let floor = -Infinity;
        offsets.forEach((offset, i) => {
          const stamp = now + offset;
          const verdict = guard.admit('k', stamp, `n${i}`, now);
          if (stamp <= floor) return expect(verdict).toMatch(/forgotten nonce/);
          expect(verdict).toBeNull();
          if (model.length >= bound) {
            model.sort((a, b) => a - b);
            floor = Math.max(floor, model.shift()!);
          }
          model.push(stamp);
        });
      }),
    );
  });

  it('drops the state of users no longer in the ACL', () => {
    const guard = new ReplayGuard();
    expect(guard.admit('gone', now, 'n', now)).toBeNull();
    guard.retainOnly(new Set(['shop']));
    // Its memory is gone (were it to come back, its old nonces are outside the window by then).
    expect(guard.admit('gone', now, 'n', now)).toBeNull();
  });
});
