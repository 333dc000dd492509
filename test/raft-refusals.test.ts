// Input from the network never trips an assertion: malformed or impossible peer messages are
// refused at the edge (validateMessage) or by the core, dropped and reported — forged ones that
// the peer transport's authentication would keep out, and ones a buggy authenticated peer sends.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateTransferMessage } from '../src/node/snapshot-transfer.js';
import { MAX_WIRE_TERM, type Message, validateMessage } from '../src/raft/messages.js';
import { ELECTION_TICKS, TestCluster, entry } from './support/raft-cluster.js';

const IDS = ['n1', 'n2', 'n3'];

/** A cluster led by n1 in term 1 with `count` committed entries on every node. */
function committedCluster(count: number): TestCluster {
  const c = new TestCluster(IDS);
  c.elect('n1');
  for (let i = 0; i < count; i++) c.propose('n1', `m${i}`);
  c.stabilize();
  c.tick('n1');
  c.stabilize();
  c.refusals = [];
  return c;
}

const heartbeat = (from: string, to: string, term: number, commit = 0): Message => ({ type: 'heartbeat', from, to, term, commit, leaderLastIndex: commit });

describe('raft messages – validation at the edge', () => {
  const append = (overrides: Record<string, unknown>) => ({
    type: 'append', from: 'n1', to: 'n2', term: 3, prevIndex: 4, prevTerm: 2, commit: 4, leaderLastIndex: 6,
    entries: [entry(5, 2, 'a'), entry(6, 3, 'b')], ...overrides,
  });

  it('accepts what a correct leader sends', () => {
    expect(validateMessage(append({}))).toMatchObject({ ok: true });
    expect(validateMessage(heartbeat('n1', 'n2', MAX_WIRE_TERM))).toMatchObject({ ok: true });
  });

  it.each([
    ['a term past the bound (the one that bricked a cluster)', heartbeat('n1', 'n2', 2 ** 53 - 1), /term is not a whole number from 0 to 281474976710656/],
    ['a term just past the bound', heartbeat('n1', 'n2', MAX_WIRE_TERM + 1), /term is not a whole number/],
    ['a fractional term', heartbeat('n1', 'n2', 1.5), /term is not a whole number/],
    ['entry terms going down', append({ entries: [entry(5, 3, 'a'), entry(6, 2, 'b')] }), /entry 6 has term 2, outside \[3, 3\]/],
    ['an entry term above the message term', append({ entries: [entry(5, 2, 'a'), entry(6, 4, 'b')] }), /entry 6 has term 4, outside \[2, 3\]/],
    ['an entry term below prevTerm', append({ prevTerm: 3, entries: [entry(5, 2, 'a')] }), /entry 5 has term 2, outside \[3, 3\]/],
    ['a gap in entry indexes', append({ entries: [entry(5, 2, 'a'), entry(7, 3, 'b')] }), /entry 1 has index 7, not 6/],
    ['entries past the leader\'s last index', append({ leaderLastIndex: 5 }), /entries end past the leader's last index 5/],
    ['a commit past the leader\'s last index', append({ commit: 7 }), /commit 7 is past the leader's last index 6/],
    ['a prevTerm above the term', append({ prevTerm: 4, entries: [] }), /prevTerm 4 is above the message's term 3/],
    ['a heartbeat commit past the leader\'s last index', { ...heartbeat('n1', 'n2', 2, 5), leaderLastIndex: 4 }, /commit 5 is past the leader's last index 4/],
    ['a vote whose last term is above its term', { type: 'vote', from: 'n1', to: 'n2', term: 2, lastIndex: 3, lastTerm: 3, transfer: false }, /lastTerm 3 is above/],
    ['a snapshot term above the term', { type: 'snapshot', from: 'n1', to: 'n2', term: 2, index: 9, snapshotTerm: 3 }, /snapshotTerm 3 is above/],
    ['a reject hint past the rejected index', { type: 'appendResp', from: 'n2', to: 'n1', term: 2, index: 3, reject: true, rejectHint: 4, hintTerm: 1 }, /rejectHint 4 is past the rejected index 3/],
    ['an unknown type', { type: 'crash', from: 'n1', to: 'n2', term: 1 }, /unknown message type "crash"/],
    ['a node id too long', heartbeat('n'.repeat(33), 'n2', 1), /from or to is not a node id/],
  ])('refuses %s', (_what, message, reason) => {
    const verdict = validateMessage(message);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toMatch(reason);
  });
});

describe('raft core – forged messages from a peer id are dropped, not asserted on', () => {
  it('a heartbeat with term 2^53 - 1 moves no term, and elections still work after it', () => {
    const c = committedCluster(2);
    for (const to of ['n2', 'n3']) c.node(to).driver.receive('n1', heartbeat('n1', to, 2 ** 53 - 1));
    c.node('n1').driver.receive('n2', heartbeat('n2', 'n1', 2 ** 53 - 1));
    c.stabilize();
    for (const id of IDS) expect(c.core(id).status().term).toBe(1);
    expect(c.refusals).toHaveLength(3);
    c.expireLeases('n3');
    c.elect('n2');
    expect(c.core('n2').status()).toMatchObject({ role: 'leader', term: 2 });
  });

  it('an append at the leader\'s own term is refused: the leader stays leader (was: InvariantViolation "two leaders")', () => {
    const c = committedCluster(2);
    const forged: Message = { type: 'append', from: 'n2', to: 'n1', term: 1, prevIndex: 3, prevTerm: 1, entries: [entry(4, 1, 'forged')], commit: 4, leaderLastIndex: 4 };
    c.node('n1').driver.receive('n2', forged);
    c.stabilize();
    expect(c.core('n1').status()).toMatchObject({ role: 'leader', term: 1, lastIndex: 3 });
    expect(c.refusals).toEqual(['append from n2 in term 1: a second leader in term 1']);
  });

  it('an append that would rewrite committed entries changes nothing: it is answered with the commit index', () => {
    const c = committedCluster(2);
    const before = c.node('n2').log.durableEntries().map((e) => e.term);
    expect(c.core('n2').status().commitIndex).toBe(3);
    const forged: Message = { type: 'append', from: 'n3', to: 'n2', term: 2, prevIndex: 1, prevTerm: 1, entries: [entry(2, 2, 'x'), entry(3, 2, 'y')], commit: 3, leaderLastIndex: 3 };
    c.node('n2').driver.receive('n3', forged);
    expect(c.node('n2').log.durableEntries().map((e) => e.term)).toEqual(before);
    expect(c.core('n2').status()).toMatchObject({ commitIndex: 3, lastIndex: 3 });
  });

  it('an acceptance past the leader\'s last index is refused: nothing commits that no one holds', () => {
    const c = committedCluster(1);
    c.isolated.add('n3');
    c.propose('n1', 'pending');
    c.runRounds(1);
    c.isolated.add('n2'); // n1 holds index 3 alone: uncommitted
    c.stabilize();
    const forged: Message = { type: 'appendResp', from: 'n2', to: 'n1', term: 1, index: 1000, reject: false, rejectHint: 0, hintTerm: 0 };
    c.node('n1').driver.receive('n2', forged);
    c.stabilize();
    expect(c.core('n1').status()).toMatchObject({ role: 'leader', commitIndex: 2, lastIndex: 3 });
    expect(c.refusals).toEqual(['appendResp from n2 in term 1: accepts index 1000, past this leader\'s last index 3']);
  });
});

// Fields drawn near the cluster's real state, plus values past the bounds: what a fuzzer would
// send. Not MAX_WIRE_TERM itself: a peer that holds the secret and names the highest term a
// node accepts leaves no term to campaign in — Raft trusts its peers (README, Security).
const termArb = fc.oneof(fc.constantFrom(0, 1, 2, 3, 7, MAX_WIRE_TERM + 1, 2 ** 53 - 1, -1, 0.5), fc.nat(10));
const indexArb = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 5, 9, 1000, MAX_WIRE_TERM, 2 ** 53, -1), fc.nat(12));
const entriesArb = fc.tuple(indexArb, fc.array(termArb, { maxLength: 4 }), fc.boolean()).map(([first, terms, contiguous]) =>
  terms.map((term, i) => entry(contiguous ? first + i : first + 2 * i, term, `f${i}`)),
);
const messageArb = (from: string, to: string) =>
  fc.record({
    type: fc.constantFrom('preVote', 'vote', 'preVoteResp', 'voteResp', 'append', 'appendResp', 'heartbeat', 'heartbeatResp', 'timeoutNow', 'snapshot', 'probe', 'probeResp'),
    term: termArb, lastIndex: indexArb, lastTerm: termArb, transfer: fc.boolean(), reject: fc.boolean(), prevIndex: indexArb, prevTerm: termArb,
    entries: entriesArb, commit: indexArb, leaderLastIndex: indexArb, index: indexArb, rejectHint: indexArb, hintTerm: termArb, snapshotTerm: termArb,
  }).map((fields) => ({ ...fields, from, to }));
const deliveryArb = fc.constantFrom(...IDS.flatMap((to) => IDS.filter((from) => from !== to).map((from) => [from, to] as const))).chain(([from, to]) =>
  fc.tuple(fc.constant(from), fc.constant(to), messageArb(from, to), fc.nat(3)),
);

describe('raft core – any message from a peer id, well-formed or not, never trips an assertion', () => {
  it('holds for random forged messages interleaved with normal operation (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(deliveryArb, { minLength: 1, maxLength: 40 }), (deliveries) => {
        const c = committedCluster(3);
        for (const [from, to, message, ticks] of deliveries) {
          c.node(to).driver.receive(from, message);
          c.tick(to, ticks);
          c.propose(IDS.find((id) => c.core(id).status().role === 'leader') ?? 'n1', 'more');
          c.stabilize();
        }
        // Still a working cluster: after the forgeries stop, one leader is elected and commits.
        for (let round = 0; round < 3 * IDS.length && !IDS.some((id) => c.core(id).status().role === 'leader'); round++) {
          c.tick(IDS[round % IDS.length]!, 2 * ELECTION_TICKS); // one node at a time times out: no split votes
          c.stabilize();
        }
        const leader = IDS.find((id) => c.core(id).status().role === 'leader');
        expect(leader).toBeDefined();
      }),
      { numRuns: 300 },
    );
  });
});

describe('snapshot transfer messages – validation at the edge', () => {
  const tuning = { maxChunkBytes: 1 << 20, maxPackageBytes: 2 ** 40 };
  const chunk = (overrides: Record<string, unknown>) => ({
    type: 'snapshotChunk', from: 'n1', to: 'n2', term: 3, index: 40, snapshotTerm: 2, totalBytes: 64, offsetBytes: 0,
    data: new Uint8Array(64), checksum: 'a'.repeat(64), ...overrides,
  });

  it('accepts a chunk a correct leader sends', () => {
    expect(validateTransferMessage(chunk({}), tuning)).not.toBeNull();
  });

  it.each([
    ['a checksum that would be a path', { checksum: '/../../../../xyz' }],
    ['a checksum that is not hex SHA-256', { checksum: '\u0000' }],
    ['a term past the wire bound', { term: 2 ** 53 - 1 }],
    ['an index past the wire bound', { index: 2 ** 53 }],
    ['a snapshot term above the term', { snapshotTerm: 4 }],
  ])('refuses %s', (_what, overrides) => {
    expect(validateTransferMessage(chunk(overrides), tuning)).toBeNull();
  });
});
