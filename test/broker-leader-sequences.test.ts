import { describe, expect, it } from 'vitest';
import { LeaderSequences } from '../src/broker/leader-sequences.js';

describe('broker – sequence check at proposal under leader quorum', () => {
  it('accepts the next seq and retries, refuses a gap before anything is acknowledged', () => {
    const seqs = new LeaderSequences();
    seqs.reserve(3, 'p', 5, 4); // applied up to 4: 5 is next
    seqs.reserve(3, 'p', 6, 4); // this leader proposed 5, so 6 is next although 5 is not applied
    expect(() => seqs.reserve(3, 'p', 8, 4)).toThrow(expect.objectContaining({ code: 'LMQ_OUT_OF_ORDER', details: { expectedSeq: 7 } }));
    seqs.reserve(3, 'p', 6, 4); // a retry: deduplicated at apply, no new reservation
    seqs.reserve(3, 'p', 7, 4);
  });

  it('forgets its own proposals when the term changes (they may be lost) and starts from applied state', () => {
    const seqs = new LeaderSequences();
    seqs.reserve(3, 'p', 5, 4);
    seqs.reserve(3, 'p', 6, 4);
    // New term: seqs 5 and 6 were never replicated and are gone; the applied state says 4.
    expect(() => seqs.reserve(4, 'p', 7, 4)).toThrow(expect.objectContaining({ code: 'LMQ_OUT_OF_ORDER' }));
    seqs.reserve(4, 'p', 5, 4);
  });

  it('gives a seq back when its proposal never reached the log', () => {
    const seqs = new LeaderSequences();
    const release = seqs.reserve(1, 'p', 1, 0);
    release(); // e.g. LMQ_NOT_LEADER from the node
    expect(() => seqs.reserve(1, 'p', 2, 0)).toThrow(expect.objectContaining({ code: 'LMQ_OUT_OF_ORDER' }));
    seqs.reserve(1, 'p', 1, 0);
  });

  it('gives back every seq of a batch refused before the log, in whatever order they are released', () => {
    const seqs = new LeaderSequences();
    const release5 = seqs.reserve(1, 'p', 5, 4);
    const release6 = seqs.reserve(1, 'p', 6, 4); // one batch held both
    release5(); // the batch's refusals run in its order
    release6();
    // 5 never reached the log: a retry of 6 first must be refused, or it would be acknowledged and dropped at apply.
    expect(() => seqs.reserve(1, 'p', 6, 4)).toThrow(expect.objectContaining({ code: 'LMQ_OUT_OF_ORDER', details: { expectedSeq: 5 } }));
    seqs.reserve(1, 'p', 5, 4);
    seqs.reserve(1, 'p', 6, 4);
  });
});
