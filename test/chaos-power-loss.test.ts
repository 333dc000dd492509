// The loss window of a power-loss chaos run, from tiny hand-written inputs: the checker's ack
// times of lost sends, and which power cut each lost write belongs to.
import { describe, expect, it } from 'vitest';
import { formatLossWindow, lossWindow } from '../src/chaos/power-loss.js';
import type { FaultRecord } from '../src/chaos/recorder.js';
import { checkHistory } from '../src/checker/index.js';
import { drain, history, send } from './checker-helpers.js';

const Q = 'orders/1';

function cut(start: number, nodes: string[]): FaultRecord {
  return { kind: 'power', nodes, detail: `power cut ${nodes.join(',')}`, start, end: start + 1000 };
}

describe('chaos – power loss window', () => {
  it('the checker reports when each lost send was acknowledged', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), send(1, Q, 'b', 1), send(2, Q, 'c', 2), drain(9, Q, [[0, 'a']])));
    expect(report.counts.lost).toBe(2);
    // history() stamps event i at i * 10 ms: b's ok is event 3, c's is event 5.
    expect(report.lostAckTimesMs).toEqual([30, 50]);
  });

  it('assigns each lost write to the first cut after its ack, and says how long before it', () => {
    const faults: FaultRecord[] = [
      { kind: 'kill', nodes: ['n1'], detail: 'SIGKILL n1', start: 500, end: 900 },
      cut(1000, ['n1', 'n2', 'n3']),
      cut(5000, ['n2', 'n3']),
    ];
    const window = lossWindow([940, 990, 4999], faults, 3);
    expect(window).toMatchObject({ lost: 3, firstLostAckMs: 940, lastLostAckMs: 4999, afterLastCut: 0 });
    expect(window.cuts).toEqual([
      { cutMs: 1000, nodes: ['n1', 'n2', 'n3'], allNodes: true, lost: 2, ackedBeforeCutMinMs: 10, ackedBeforeCutMaxMs: 60 },
      { cutMs: 5000, nodes: ['n2', 'n3'], allNodes: false, lost: 1, ackedBeforeCutMinMs: 1, ackedBeforeCutMaxMs: 1 },
    ]);
    expect(formatLossWindow(window)).toEqual([
      'power loss: 3 acknowledged write(s) lost, acked from 0.94 s to 5.00 s (span 4059 ms)',
      '  cut at 1.00 s of n1,n2,n3 (all nodes): 2 lost, acked 10–60 ms before the cut',
      '  cut at 5.00 s of n2,n3: 1 lost, acked 1–1 ms before the cut',
    ]);
  });

  it('gives a reply still in flight when the nodes died to that cut', () => {
    const window = lossWindow([1020, 1100], [cut(1000, ['n1', 'n2', 'n3']), cut(8000, ['n1', 'n2'])], 3);
    expect(window.cuts.map((c) => c.lost)).toEqual([1, 1]);
    expect(window.cuts[0]!.ackedBeforeCutMinMs).toBe(-20);
  });

  it('counts a loss acknowledged after the last cut as unexplained', () => {
    const window = lossWindow([200, 7000], [cut(1000, ['n1', 'n2', 'n3'])], 3);
    expect(window.afterLastCut).toBe(1);
    expect(window.cuts[0]!.lost).toBe(1);
    expect(formatLossWindow(window)[2]).toContain('1 lost write(s) were acknowledged after the last power cut');
    expect(formatLossWindow(lossWindow([], [cut(1000, ['n1', 'n2', 'n3'])], 3))).toEqual(['power loss: no acknowledged write lost in 1 power cut(s)']);
  });
});
