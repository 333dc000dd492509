import { describe, expect, it } from 'vitest';
import { MemoryLog } from '../src/raft/memory-log.js';
import type { AppendResponse, Message } from '../src/raft/messages.js';
import { RaftLog } from '../src/raft/raft-log.js';
import { entryBytes } from '../src/raft/types.js';
import { InvariantViolation } from '../src/util/assert.js';
import { ELECTION_TICKS, TestCluster, entry } from './support/raft-cluster.js';

const IDS = ['n1', 'n2', 'n3'];

function appendResp(from: string, to: string, term: number, index: number): AppendResponse {
  return { type: 'appendResp', from, to, term, index, reject: false, rejectHint: 0, hintTerm: 0 };
}

describe('raft core – leader election', () => {
  it('elects the node that times out first and commits its no-op everywhere', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    expect(c.core('n1').status()).toMatchObject({ role: 'leader', term: 1, leader: 'n1', commitIndex: 1 });
    for (const id of ['n2', 'n3']) {
      expect(c.core(id).status()).toMatchObject({ role: 'follower', term: 1, leader: 'n1', vote: 'n1' });
    }
    c.tick('n1'); // a heartbeat carries the commit index on
    c.stabilize();
    for (const id of IDS) expect(c.core(id).status().commitIndex).toBe(1);
    expect(c.core('n1').indexes()).toEqual({ commitIndex: 1, persistedIndex: 1, allMatchIndex: 1 });
    expect(c.core('n2').indexes()).toEqual({ commitIndex: 1, persistedIndex: 1, allMatchIndex: 0 });
  });

  it('a new leader answers for earlier commits only once it has applied an entry of its own term', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.propose('n1', 'a');
    c.stabilize();
    c.isolated.add('n1');
    c.expireLeases('n2', 'n3');
    c.tick('n2', ELECTION_TICKS);
    for (let round = 0; round < 20 && c.core('n2').status().role !== 'leader'; round++) c.runRounds(1);
    expect(c.core('n2').status().role).toBe('leader');
    expect(c.core('n2').leaderHasAppliedOwnTerm()).toBe(false); // its no-op is not yet committed and applied
    c.stabilize();
    expect(c.core('n2').leaderHasAppliedOwnTerm()).toBe(true);
    expect(c.core('n3').leaderHasAppliedOwnTerm()).toBe(false); // a follower never answers so
  });

  it('persists term and vote before the vote is granted', () => {
    const c = new TestCluster(IDS);
    c.tick('n1', ELECTION_TICKS);
    c.runRounds(2); // the pre-vote round trip only: n1 now wants to send its vote requests
    const voteRequests = c.processReady('n1').filter((m) => m.type === 'vote');
    c.dropQueued();
    expect(voteRequests).toHaveLength(2);
    c.core('n2').step(voteRequests.find((m) => m.to === 'n2')!);
    const ready = c.core('n2').ready();
    expect(ready.hardState).toEqual({ term: 1, vote: 'n1' });
    expect(ready.messages).toContainEqual(expect.objectContaining({ type: 'voteResp', reject: false, to: 'n1' }));
  });

  it('sends nothing early while a vote is being synced, so a regranted vote cannot outrun its fsync', () => {
    const c = new TestCluster(IDS);
    c.tick('n1', ELECTION_TICKS);
    c.runRounds(2);
    const vote = c.processReady('n1').find((m) => m.type === 'vote' && m.to === 'n2')!;
    c.dropQueued();
    c.core('n2').step(vote);
    expect(c.core('n2').takeMessages()).toEqual([]); // the grant waits for the hard state
    const ready = c.core('n2').ready(); // hard state handed out, not yet synced
    c.core('n2').step(vote); // the candidate asks again (a retry)
    expect(c.core('n2').takeMessages()).toEqual([]);
    c.core('n2').advance(ready);
    expect(c.core('n2').takeMessages()).toContainEqual(expect.objectContaining({ type: 'voteResp', reject: false }));
  });

  it('never changes a vote within a term, also across a restart', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.restart('n2');
    expect(c.core('n2').status()).toMatchObject({ term: 1, vote: 'n1' });
    // n3 asks for n2's vote in term 1 (as if it had campaigned concurrently): refused.
    c.core('n2').step({ type: 'vote', from: 'n3', to: 'n2', term: 1, lastIndex: 9, lastTerm: 1, transfer: false });
    expect(c.processReady('n2')).toContainEqual(expect.objectContaining({ type: 'voteResp', reject: true }));
  });

  it('refuses a candidate whose log is behind (election restriction)', () => {
    const c = new TestCluster(IDS, {}, { n1: [entry(1, 1)], n2: [entry(1, 1), entry(2, 1, 'x')] }, { n1: { term: 1, vote: null }, n2: { term: 1, vote: null } });
    c.isolated.add('n3');
    c.elect('n1');
    expect(c.core('n1').status().role).not.toBe('leader');
    c.elect('n2');
    expect(c.core('n2').status().role).toBe('leader');
  });
});

describe('raft core – pre-vote and check-quorum', () => {
  it('a partitioned node does not raise its term and cannot depose the leader on return', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n3');
    for (let i = 0; i < 5; i++) {
      c.tick('n3', ELECTION_TICKS);
      c.stabilize();
    }
    expect(c.core('n3').status().term).toBe(1); // pre-vote never succeeded, so no term bump
    c.isolated.delete('n3');
    c.tick('n3', ELECTION_TICKS);
    c.stabilize();
    expect(c.core('n1').status()).toMatchObject({ role: 'leader', term: 1 });
  });

  it('followers that hear from a leader ignore higher-term vote requests (leader lease)', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.core('n2').step({ type: 'vote', from: 'n3', to: 'n2', term: 5, lastIndex: 100, lastTerm: 4, transfer: false });
    expect(c.core('n2').status().term).toBe(1);
    expect(c.processReady('n2')).toEqual([]);
  });

  it('followers whose connections from a dead leader closed elect a successor within a few ticks', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n1'); // killed: sends and receives nothing more
    for (const id of ['n2', 'n3']) c.core(id).peerDisconnected('n1');
    expect(c.core('n2').status().leader).toBeNull();
    for (let tick = 0; tick < 3; tick++) {
      for (const id of ['n2', 'n3']) c.tick(id);
      c.stabilize();
    }
    // Well inside one election timeout (ELECTION_TICKS), one of them leads term 2.
    const leaders = ['n2', 'n3'].filter((id) => c.core(id).status().role === 'leader');
    expect(leaders).toHaveLength(1);
    expect(c.core(leaders[0]!).status().term).toBe(2);
  });

  it('a follower that still hears the leader refuses the pre-vote of one whose connection closed', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.core('n3').peerDisconnected('n1'); // only n3 lost its connection; n2 is in lease
    for (let tick = 0; tick < 3; tick++) {
      c.tick('n3');
      c.stabilize();
    }
    expect(c.core('n1').status()).toMatchObject({ role: 'leader', term: 1 });
    expect(c.core('n3').status().term).toBe(1); // pre-vote failed: no term bump, nothing disturbed
    c.tick('n1'); // the leader's next heartbeat takes n3 back
    c.stabilize();
    expect(c.core('n3').status()).toMatchObject({ role: 'follower', leader: 'n1' });
  });

  it('asks again every few ticks when a peer still in its lease ignored the pre-vote', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n1');
    c.core('n2').peerDisconnected('n1');
    c.tick('n2');
    c.stabilize();
    expect(c.core('n2').status().role).toBe('preCandidate'); // n3 has not noticed yet: in lease, it ignores the pre-vote
    c.core('n3').peerDisconnected('n1'); // n3 notices late (a busy node)
    for (let tick = 0; tick < 2; tick++) {
      c.tick('n2');
      c.stabilize();
    }
    // Without asking again n2 would wait a whole election timeout (ELECTION_TICKS).
    expect(c.core('n2').status()).toMatchObject({ role: 'leader', term: 2 });
  });

  it('ignores a closed connection from a node that is not its leader', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.core('n2').peerDisconnected('n3');
    expect(c.core('n2').status().leader).toBe('n1');
  });

  it('a leader that loses contact with a majority steps down after an election timeout', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n1');
    for (let i = 0; i < 2 * ELECTION_TICKS; i++) {
      c.tick('n1');
      c.stabilize();
    }
    expect(c.core('n1').status().role).toBe('follower');
    expect(c.propose('n1', 'x')).toEqual({ ok: false, reason: 'notLeader', leader: null });
  });

  it('a stale leader back from a partition learns the new term from a follower and steps down', () => {
    const c = new TestCluster(IDS, {});
    c.elect('n1');
    c.isolated.add('n1');
    c.expireLeases('n3');
    c.elect('n2');
    expect(c.core('n2').status()).toMatchObject({ role: 'leader', term: 2 });
    c.isolated.delete('n1');
    c.tick('n1'); // n1 still believes it leads term 1 and sends heartbeats
    c.stabilize();
    expect(c.core('n1').status()).toMatchObject({ role: 'follower', term: 2 });
  });
});

describe('raft core – log replication', () => {
  it('replicates proposals, commits on a majority and applies them in order', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n3');
    for (const text of ['a', 'b', 'c']) expect(c.propose('n1', text)).toMatchObject({ ok: true, term: 1 });
    c.stabilize();
    expect(c.core('n1').status().commitIndex).toBe(4);
    expect(c.appliedTexts('n1')).toEqual(['a', 'b', 'c']);
    c.isolated.delete('n3');
    c.tick('n1');
    c.stabilize();
    expect(c.appliedTexts('n3')).toEqual(['a', 'b', 'c']);
  });

  it('sends the follower whose ack moved the commit index one append, not a second empty one', () => {
    const c = new TestCluster(IDS);
    c.isolated.add('n3');
    c.tick('n1', ELECTION_TICKS);
    for (let round = 0; round < 20 && c.core('n1').status().role !== 'leader'; round++) c.runRounds(1);
    expect(c.core('n1').status().role).toBe('leader');
    c.processReady('n1'); // the no-op goes out as a probe; n2 stays paused until it answers
    c.propose('n1', 'a');
    c.runRounds(2); // n2 gets the probe, persists it and acknowledges index 1
    const toN2 = c.processReady('n1').filter((m) => m.to === 'n2');
    expect(c.core('n1').status().commitIndex).toBe(1);
    // The append of "a" carries the new commit index: no empty append follows it.
    expect(toN2).toEqual([expect.objectContaining({ type: 'append', commit: 1, entries: [expect.objectContaining({ index: 2 })] })]);
  });

  it('sends no empty append when only the commit index moved: the next append or heartbeat carries it', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.propose('n1', 'a');
    const fromLeader: Message[] = [];
    c.filter = (m) => {
      if (m.from === 'n1') fromLeader.push(m);
      return true;
    };
    c.stabilize();
    expect(c.core('n1').status().commitIndex).toBe(2);
    expect(fromLeader.filter((m) => m.type === 'append')).toEqual([
      expect.objectContaining({ to: 'n2', entries: [expect.objectContaining({ index: 2 })] }),
      expect.objectContaining({ to: 'n3', entries: [expect.objectContaining({ index: 2 })] }),
    ]);
    expect(c.appliedTexts('n2')).toEqual([]); // n2 holds "a" but has not heard it committed
    c.tick('n1');
    const heartbeats = c.processReady('n1').filter((m) => m.type === 'heartbeat');
    expect(heartbeats).toEqual([expect.objectContaining({ to: 'n2', commit: 2 }), expect.objectContaining({ to: 'n3', commit: 2 })]);
    c.stabilize();
    expect(c.appliedTexts('n2')).toEqual(['a']);
    expect(c.appliedTexts('n3')).toEqual(['a']);
    c.propose('n1', 'b'); // and the next append carries it too
    const appends = c.processReady('n1').filter((m) => m.type === 'append');
    expect(appends.map((m) => m.type === 'append' && m.commit)).toEqual([2, 2]);
  });

  it('with a longer heartbeat interval a follower hears a bare commit index at the next heartbeat, and never past its match', () => {
    const c = new TestCluster(IDS, { heartbeatIntervalTicks: 3 });
    c.elect('n1');
    c.isolated.add('n3'); // n3 falls behind: its heartbeat may carry no commit beyond what it holds
    c.propose('n1', 'a');
    c.stabilize();
    expect(c.core('n1').status().commitIndex).toBe(2);
    c.tick('n1', 2);
    expect(c.processReady('n1').filter((m) => m.type === 'heartbeat')).toEqual([]);
    c.stabilize();
    expect(c.appliedTexts('n2')).toEqual([]);
    c.tick('n1');
    const heartbeats = c.processReady('n1').filter((m) => m.type === 'heartbeat');
    expect(heartbeats).toEqual([expect.objectContaining({ to: 'n2', commit: 2 }), expect.objectContaining({ to: 'n3', commit: 1 })]);
    c.stabilize();
    expect(c.appliedTexts('n2')).toEqual(['a']);
  });

  it('an ack equal to what the leader knows moves a probing follower back to replicate', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    const stateOf = (id: string) => c.core('n1').status().progress.find((p) => p.id === id)?.state;
    expect(stateOf('n2')).toBe('replicate');
    // A rejection (e.g. a reordered old one) sends the caught-up, idle n2 back to probing.
    c.core('n1').step({ type: 'appendResp', from: 'n2', to: 'n1', term: 1, index: 2, reject: true, rejectHint: 1, hintTerm: 1 });
    expect(stateOf('n2')).toBe('probe');
    c.stabilize(); // n2 answers the probe with index 1, which n1 already knew
    expect(stateOf('n2')).toBe('replicate');
  });

  it('acknowledges an append only after the entries are durable', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.propose('n1', 'a');
    const append = c.processReady('n1').find((m) => m.type === 'append' && m.to === 'n2')!;
    c.dropQueued();
    c.core('n2').step(append);
    const ready = c.core('n2').ready();
    expect(ready.entries.map((e) => e.index)).toEqual([2]);
    expect(ready.messages.filter((m) => m.type === 'appendResp')).toEqual([]);
    expect(ready.persistedMessages).toContainEqual(expect.objectContaining({ type: 'appendResp', index: 2, reject: false }));
  });

  it('counts the leader only once its own copy is durable', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n3');
    c.propose('n1', 'a');
    const ready = c.core('n1').ready(); // entry 2 handed out for persisting, not yet durable
    c.core('n1').step(appendResp('n2', 'n1', 1, 2));
    expect(c.core('n1').status().commitIndex).toBe(1); // n2 alone is not a majority
    c.node('n1').log.write(ready.entries);
    c.core('n1').advance(ready);
    expect(c.core('n1').status().commitIndex).toBe(2);
  });

  it('truncates a conflicting uncommitted suffix on a former leader', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n1');
    c.propose('n1', 'lost-1');
    c.propose('n1', 'lost-2');
    c.stabilize();
    expect(c.logTerms('n1')).toEqual([1, 1, 1]);
    c.expireLeases('n3');
    c.elect('n2');
    c.propose('n2', 'kept');
    c.stabilize();
    c.isolated.delete('n1');
    c.tick('n2');
    c.stabilize();
    expect(c.logTerms('n1')).toEqual([1, 2, 2]);
    expect(c.appliedTexts('n1')).toEqual(['kept']);
  });

  it('backtracks fast over a divergent follower log', () => {
    const old = [entry(1, 1), ...Array.from({ length: 30 }, (_, i) => entry(i + 2, 2, `old${i}`))];
    const c = new TestCluster(IDS, {}, { n1: [entry(1, 1)], n2: [entry(1, 1)], n3: old }, {
      n1: { term: 3, vote: null }, n2: { term: 3, vote: null }, n3: { term: 3, vote: null },
    });
    c.isolated.add('n3');
    c.elect('n1');
    c.isolated.delete('n3');
    let rejects = 0;
    c.filter = (m: Message) => {
      if (m.type === 'appendResp' && m.reject) rejects++;
      return true;
    };
    c.tick('n1');
    c.stabilize();
    expect(c.logTerms('n3')).toEqual([1, 4]);
    expect(rejects).toBeLessThanOrEqual(2); // the hint skips the whole term-2 run at once
  });
});

describe('raft core – commitment of entries from older terms (§5.4.2)', () => {
  it('does not count replicas of an old-term entry toward commit until a current-term entry is replicated', () => {
    const c = new TestCluster(IDS, {}, { n1: [entry(1, 1), entry(2, 1, 'x')], n2: [entry(1, 1)] }, {
      n1: { term: 1, vote: null }, n2: { term: 1, vote: null }, n3: { term: 1, vote: null },
    });
    c.isolated.add('n3');
    c.tick('n1', ELECTION_TICKS);
    c.filter = (m) => m.type !== 'append'; // win the election, but replicate nothing
    c.stabilize();
    const leader = c.core('n1');
    expect(leader.status()).toMatchObject({ role: 'leader', term: 2, lastIndex: 3 });
    leader.step(appendResp('n2', 'n1', 2, 2)); // n2 now holds x@1: a majority, but of an old term
    expect(leader.status().commitIndex).toBe(0);
    leader.step(appendResp('n2', 'n1', 2, 3)); // the term-2 no-op on a majority commits both
    expect(leader.status().commitIndex).toBe(3);
  });
});

describe('raft core – leadership transfer and preferred leader', () => {
  it('transfers leadership to an up-to-date follower', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    expect(c.core('n1').transferLeadership('n2')).toBe(true);
    c.stabilize();
    expect(c.core('n2').status()).toMatchObject({ role: 'leader', term: 2 });
    expect(c.core('n1').status()).toMatchObject({ role: 'follower', leader: 'n2' });
  });

  it('catches a lagging target up before handing over, refusing proposals meanwhile', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n3');
    c.propose('n1', 'a');
    c.stabilize();
    c.isolated.delete('n3');
    c.core('n1').transferLeadership('n3');
    expect(c.propose('n1', 'b')).toEqual({ ok: false, reason: 'transferring', leader: 'n1' });
    c.stabilize();
    expect(c.core('n3').status()).toMatchObject({ role: 'leader', term: 2 });
    expect(c.appliedTexts('n3')).toEqual(['a']);
  });

  it('abandons a transfer that does not finish within an election timeout', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n3');
    c.core('n1').transferLeadership('n3');
    for (let i = 0; i < ELECTION_TICKS; i++) {
      c.tick('n1');
      c.stabilize();
    }
    expect(c.core('n1').status()).toMatchObject({ role: 'leader', transferee: null });
    expect(c.propose('n1', 'b').ok).toBe(true);
  });

  it('a transfer to the leader itself cancels a pending transfer, so writes are taken again at once', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.isolated.add('n3');
    expect(c.core('n1').transferLeadership('n3')).toBe(true);
    expect(c.propose('n1', 'a')).toEqual({ ok: false, reason: 'transferring', leader: 'n1' });
    expect(c.core('n1').transferLeadership('n1')).toBe(true);
    expect(c.core('n1').status().transferee).toBeNull();
    expect(c.propose('n1', 'a').ok).toBe(true);
    expect(c.core('n1').transferLeadership('n1')).toBe(false); // nothing left to cancel
    c.stabilize();
    expect(c.appliedTexts('n1')).toEqual(['a']);
  });

  it('moves leadership back to the preferred leader once it is healthy', () => {
    const c = new TestCluster(IDS, { preferredLeader: 'n3' });
    c.isolated.add('n3');
    c.elect('n1');
    c.propose('n1', 'a');
    c.stabilize();
    c.isolated.delete('n3');
    for (let i = 0; i < 5; i++) {
      c.tick(c.core('n1').status().role === 'leader' ? 'n1' : 'n3');
      c.stabilize();
    }
    expect(c.core('n3').status().role).toBe('leader');
    expect(c.appliedTexts('n3')).toEqual(['a']);
  });
});

describe('raft core – bounds and invariants', () => {
  it('refuses proposals beyond maxUncommittedEntries and redirects on followers', () => {
    const c = new TestCluster(IDS, { maxUncommittedEntries: 3 });
    c.elect('n1');
    c.isolated.add('n2');
    c.isolated.add('n3');
    expect(c.propose('n1', 'a').ok).toBe(true);
    expect(c.propose('n1', 'b').ok).toBe(true);
    expect(c.propose('n1', 'c').ok).toBe(true);
    expect(c.propose('n1', 'd')).toEqual({ ok: false, reason: 'overloaded', leader: 'n1' });
    expect(c.propose('n2', 'x')).toEqual({ ok: false, reason: 'notLeader', leader: 'n1' });
  });

  it('refuses proposals beyond maxUncommittedBytes until what is pending is applied', () => {
    const c = new TestCluster(IDS, { maxUncommittedBytes: 100 });
    c.elect('n1');
    c.isolated.add('n2');
    c.isolated.add('n3');
    const big = 'x'.repeat(150);
    expect(c.propose('n1', big).ok).toBe(true); // one is always accepted when none is pending
    expect(c.propose('n1', 'y')).toEqual({ ok: false, reason: 'overloaded', leader: 'n1' });
    c.isolated.clear();
    c.tick('n1'); // a heartbeat brings the followers back: the entry commits and is applied
    c.stabilize();
    expect(c.appliedTexts('n1')).toContain(big);
    expect(c.propose('n1', 'y').ok).toBe(true);
    expect(c.propose('n1', 'z'.repeat(99)).ok).toBe(true);
    expect(c.propose('n1', 'w')).toEqual({ ok: false, reason: 'overloaded', leader: 'n1' });
  });

  it('bounds appends in flight per follower by count', () => {
    const c = new TestCluster(IDS, { maxInflightMsgs: 2, maxAppendBytes: 40 });
    c.elect('n1');
    for (let i = 0; i < 10; i++) c.propose('n1', `m${i}`);
    const appendsToN2 = c.processReady('n1').filter((m) => m.type === 'append' && m.to === 'n2');
    expect(appendsToN2).toHaveLength(2);
    c.stabilize();
    expect(c.core('n2').status().lastIndex).toBe(11); // every entry arrived, two appends at a time
    c.tick('n1'); // the commit of the last ones reaches n2 with the next heartbeat
    c.stabilize();
    expect(c.appliedTexts('n2')).toHaveLength(10);
  });

  it('catches a lagging follower up by at most maxCatchUpBytesPerTick, heartbeats and the other follower never waiting', () => {
    const body = 'x'.repeat(100);
    const cost = entryBytes(entry(1, 1, body));
    const c = new TestCluster(IDS, { maxAppendBytes: 2 * cost, maxCatchUpBytesPerTick: 4 * cost, maxInflightMsgs: 1000, maxInflightBytes: 1 << 20 });
    c.elect('n1');
    c.isolated.add('n3');
    for (let i = 0; i < 40; i++) c.propose('n1', body);
    c.stabilize();
    c.tick('n1', ELECTION_TICKS); // n3 silent for an election timeout: probe it
    c.stabilize();
    c.isolated.delete('n3');
    // n3 answers a burst of heartbeats at once (as after a reconnect): each answer is a step of
    // its own, yet together they get no more than one tick's budget.
    const beat = { type: 'heartbeatResp' as const, from: 'n3', to: 'n1', term: 1 };
    for (let i = 0; i < 20; i++) c.node('n1').driver.receive('n3', beat);
    const bytesTo = (to: string, ms: readonly Message[]) =>
      ms.reduce((sum, m) => sum + (m.type === 'append' && m.to === to ? m.entries.reduce((t, e) => t + entryBytes(e), 0) : 0), 0);
    const perTick: number[] = [];
    for (let tick = 0; tick < 30 && c.core('n3').status().lastIndex < 41; tick++) {
      // Everything delivered between two ticks: what n1 sent n3 from storage in that tick.
      const sent: Message[] = [];
      c.filter = (m) => (sent.push(m), true);
      c.stabilize();
      perTick.push(bytesTo('n3', sent));
      c.tick('n1');
      const beats = c.processReady('n1').filter((m) => m.type === 'heartbeat');
      expect(beats.map((m) => m.to).sort()).toEqual(['n2', 'n3']); // heartbeats go out every tick
      if (tick === 2) {
        // Mid catch-up, a new proposal goes to n2 at once: it is in memory, not read from storage.
        c.propose('n1', 'fresh');
        expect(c.processReady('n1')).toContainEqual(expect.objectContaining({ type: 'append', to: 'n2', entries: [expect.objectContaining({ index: 42 })] }));
      }
    }
    c.filter = () => true;
    expect(Math.max(...perTick)).toBe(4 * cost); // the budget was reached, never passed
    expect(perTick.filter((bytes) => bytes > 0).length).toBeGreaterThanOrEqual(40 / 4);
    c.stabilize();
    expect(c.appliedTexts('n3')).toEqual([...Array.from({ length: 40 }, () => body), 'fresh']);
  });

  it('a follower never lets an append rewrite what it has committed', () => {
    const c = new TestCluster(IDS);
    c.elect('n1');
    c.propose('n1', 'a');
    c.stabilize();
    c.tick('n1');
    c.stabilize();
    expect(c.core('n2').status().commitIndex).toBe(2);
    // prevIndex 1 is below the commit: the follower answers with its commit index instead.
    c.core('n2').step({ type: 'append', from: 'n1', to: 'n2', term: 1, prevIndex: 1, prevTerm: 1, entries: [entry(2, 1, 'evil')], commit: 2, leaderLastIndex: 2 });
    expect(c.processReady('n2')).toContainEqual(expect.objectContaining({ type: 'appendResp', index: 2, reject: false }));
    expect(c.appliedTexts('n2')).toEqual(['a']);
  });

  it('keeps durable entries in memory until applied, within its byte bound, and reads older ones from storage', () => {
    const storage = new MemoryLog();
    let storageReads = 0;
    const reader = { firstIndex: () => storage.firstIndex(), lastIndex: () => storage.lastIndex(), term: (i: number) => storage.term(i),
      entries: (lo: number, hi: number, max: number) => { storageReads++; return storage.entries(lo, hi, max); } };
    const entryCost = entryBytes(entry(1, 1, 'x'));
    const log = new RaftLog(reader, 0, 2 * entryCost);
    log.append([entry(1, 1, 'a'), entry(2, 1, 'b'), entry(3, 1, 'c')]);
    storage.write(log.takeEntriesToPersist());
    log.stableTo(3, 1);
    log.commitTo(3);
    // Three durable entries, room for two: the oldest is read back from storage, the others are not.
    expect(log.entriesToApply(1 << 20).map((e) => e.index)).toEqual([1, 2, 3]);
    expect(storageReads).toBe(1);
    log.appliedTo(1);
    expect(log.entriesToApply(1 << 20).map((e) => e.index)).toEqual([2, 3]);
    expect(storageReads).toBe(1);
    // A conflicting append past the commit drops the retained copy it replaces.
    log.appliedTo(2);
    log.append([entry(4, 1, 'd')]);
    storage.write(log.takeEntriesToPersist());
    log.stableTo(4, 1);
    log.append([entry(4, 2, 'e')]);
    expect(log.term(4)).toBe(2);
    expect(log.entries(3, 5, 1 << 20).map((e) => e.term)).toEqual([1, 2]);
    expect(storageReads).toBe(1);
  });

  it('crashes loudly when the log is asked to truncate a committed entry', () => {
    const log = new RaftLog(new MemoryLog([entry(1, 1), entry(2, 1, 'a')]), 0, 1024);
    log.commitTo(2);
    expect(() => log.append([entry(2, 2, 'conflict')])).toThrow(InvariantViolation);
    expect(() => log.commitTo(3)).toThrow(InvariantViolation); // commit never passes the last index
  });
});
