import { describe, expect, it } from 'vitest';
import type { QuorumMode } from '../src/config/config.js';
import { type Acknowledged, ProposalTracker } from '../src/node/proposals.js';

function add(tracker: ProposalTracker<string>, index: number, term: number, mode: QuorumMode, deadlineMs: number) {
  return new Promise<Acknowledged<string>>((resolve, reject) => tracker.add(index, term, mode, deadlineMs, { resolve, reject }));
}

describe('node – proposal tracking', () => {
  it('fails an earlier term’s proposals when the node leads again, even at reused indexes', async () => {
    const tracker = new ProposalTracker<string>();
    const old = add(tracker, 100, 5, 'majority', Number.MAX_SAFE_INTEGER);
    // Stepped down, tail overwritten by the term-6 leader, re-elected in term 7: index 91 again.
    const fresh = add(tracker, 91, 7, 'majority', Number.MAX_SAFE_INTEGER);
    await expect(old).rejects.toMatchObject({ code: 'LMQ_LEADERSHIP_LOST', indeterminate: true });
    tracker.applied(91, 7, 'ok', 0);
    await expect(fresh).resolves.toEqual({ index: 91, term: 7, result: 'ok' });
  });

  it('answers an `all` proposal that outlives its deadline as indeterminate, keeping later ones', async () => {
    const tracker = new ProposalTracker<string>();
    const stuck = add(tracker, 1, 1, 'all', 1000);
    const later = add(tracker, 2, 1, 'all', 5000);
    tracker.applied(1, 1, 'r1', 0); // committed, but a follower is down: allMatchIndex stays 0
    tracker.expire(1500);
    await expect(stuck).rejects.toMatchObject({ code: 'LMQ_TIMEOUT', indeterminate: true });
    expect(tracker.size()).toBe(1);
    tracker.applied(2, 1, 'r2', 2);
    await expect(later).resolves.toEqual({ index: 2, term: 1, result: 'r2' });
  });
});
