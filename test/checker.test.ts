import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkHistory, checkHistoryFile, formatReport, type HistoryEvent } from '../src/checker/index.js';
import { LmqError } from '../src/util/errors.js';
import {
  drain,
  foundKinds,
  history,
  poll,
  pollInvoke,
  pollOk,
  send,
  sendFail,
  sendInfo,
  sendInvoke,
  sendOk,
  type Step,
} from './checker-helpers.js';

const Q = 'orders/1';

describe('checker – each anomaly from a tiny history', () => {
  it('lost: an acked send missing from the final drain', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), send(0, Q, 'b', 1), drain(9, Q, [[0, 'a']])));
    expect(foundKinds(report)).toEqual(['lost']);
    expect(report.counts.lost).toBe(1);
    expect(report.anomalies.lost[0]).toMatchObject({ body: 'b', queue: Q, ackedOffset: 1, send: { line: 4, process: 0, type: 'ok' }, drain: { line: 6 } });
    expect(report.valid).toBe(false);
    expect(report.verdict).toBe('invalid');
  });

  it('lost: judged by the LAST drain when a queue was drained twice', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), drain(9, Q, [[0, 'a']]), drain(9, Q, [])));
    expect(report.counts.lost).toBe(1);
    expect(report.counts['poll-skip']).toBe(1); // the second drain also lacks offset 0, which the first showed
  });

  it('unexpected: a body no send invoked, one sent to another queue, one read before its send', () => {
    const report = checkHistory(
      history(
        send(0, Q, 'a', 0),
        drain(9, Q, [[0, 'a'], [1, 'invented']]),
        send(1, 'other/0', 'b', 0),
        poll(5, Q, [[2, 'b'], [3, 'c']]),
        send(2, Q, 'c', 3),
        drain(8, 'other/0', [[0, 'b']]),
      ),
    );
    expect(foundKinds(report)).toEqual(['unexpected', 'duplicate']); // b at other/0 and at orders/1 is inherently a duplicate too
    expect(report.counts.unexpected).toBe(3);
    expect(report.anomalies.unexpected.map((e) => e['body'])).toEqual(['invented', 'b', 'c']);
    expect(report.anomalies.unexpected[2]?.description).toMatch(/returned "c" at orders\/1 offset 3, but its send was invoked later, at line 9$/);
  });

  it('duplicate: one body stored at two offsets', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), drain(9, Q, [[0, 'a'], [1, 'a']])));
    expect(foundKinds(report)).toEqual(['duplicate']);
    expect(report.anomalies.duplicate[0]).toMatchObject({ body: 'a', locations: [{ queue: Q, offset: 0 }, { queue: Q, offset: 1 }] });
  });

  it('inconsistent-offsets: two reads disagree on one (queue, offset)', () => {
    // a landed (info), b did not (info): no ack is involved, so nothing else is implied.
    const report = checkHistory(
      history(sendInvoke(0, Q, 'a'), sendInfo(0, Q, 'a'), sendInvoke(1, Q, 'b'), sendInfo(1, Q, 'b'), poll(5, Q, [[0, 'b']]), drain(9, Q, [[0, 'a']])),
    );
    expect(foundKinds(report)).toEqual(['inconsistent-offsets']);
    expect(report.anomalies['inconsistent-offsets'][0]).toMatchObject({ queue: Q, offset: 0, reads: [{ body: 'b' }, { body: 'a' }] });
  });

  it('inconsistent-offsets at an acked offset also contradicts the ack (offset-mismatch)', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), sendInvoke(1, Q, 'b'), sendInfo(1, Q, 'b'), poll(5, Q, [[0, 'b']]), drain(9, Q, [[0, 'a']])));
    expect(foundKinds(report)).toEqual(['inconsistent-offsets', 'offset-mismatch']);
  });

  it('offset-mismatch: the ack names an offset where reads show another body, or the body only elsewhere', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), send(0, Q, 'b', 0), send(0, Q, 'c', 7), drain(9, Q, [[0, 'a'], [1, 'b'], [2, 'c']])));
    expect(foundKinds(report)).toEqual(['offset-mismatch']);
    expect(report.counts['offset-mismatch']).toBe(2);
    expect(report.anomalies['offset-mismatch'][0]).toMatchObject({ body: 'b', ackedOffset: 0, readBody: 'a', readOffset: 0 });
    expect(report.anomalies['offset-mismatch'][1]).toMatchObject({ body: 'c', ackedOffset: 7, readBody: 'c', readOffset: 2 });
  });

  it('reorder: A acked before B was invoked, yet A sits after B', () => {
    const report = checkHistory(history(send(0, Q, 'a', 1), send(0, Q, 'b', 0), drain(9, Q, [[0, 'b'], [1, 'a']])));
    expect(foundKinds(report)).toEqual(['reorder']);
    expect(report.anomalies.reorder[0]).toMatchObject({ queue: Q, earlier: { body: 'a', offset: 1 }, later: { body: 'b', offset: 0 } });
  });

  it('reorder: judged on acked offsets when the queue is not read', () => {
    const report = checkHistory(history(send(0, Q, 'a', 1), send(0, Q, 'b', 0)));
    expect(foundKinds(report)).toEqual(['reorder']);
    expect(report.verdict).toBe('invalid');
  });

  it('failed-present: a failed send shows up in a read', () => {
    const report = checkHistory(history(sendInvoke(0, Q, 'a'), sendFail(0, Q, 'a'), poll(5, Q, [[0, 'a']]), drain(9, Q, [[0, 'a']])));
    expect(foundKinds(report)).toEqual(['failed-present']);
    expect(report.anomalies['failed-present'][0]).toMatchObject({ body: 'a', send: { line: 2, type: 'fail' }, location: { offset: 0, read: { line: 4 } } });
  });

  const abc = (): Step[] => [...send(0, Q, 'a', 0), ...send(0, Q, 'b', 1), ...send(0, Q, 'c', 2)];
  const drainAbc = (): Step[] => drain(9, Q, [[0, 'a'], [1, 'b'], [2, 'c']]);

  it('nonmonotonic-poll: successive polls of one process go backwards', () => {
    const report = checkHistory(history(abc(), poll(5, Q, [[0, 'a'], [1, 'b']]), poll(5, Q, [[1, 'b'], [2, 'c']]), drainAbc()));
    expect(foundKinds(report)).toEqual(['nonmonotonic-poll']);
    expect(report.anomalies['nonmonotonic-poll'][0]).toMatchObject({ process: 5, queue: Q, previousOffset: 1, offset: 1, previousRead: { line: 8 }, read: { line: 10 } });
  });

  it('nonmonotonic-poll: offsets go backwards within one poll, within a drain, or before a poll\'s `from`', () => {
    const within = checkHistory(history(abc(), poll(5, Q, [[1, 'b'], [0, 'a']]), drainAbc()));
    expect(foundKinds(within)).toEqual(['nonmonotonic-poll']);
    const inDrain = checkHistory(history(abc(), drain(9, Q, [[0, 'a'], [2, 'c'], [1, 'b']])));
    expect(foundKinds(inDrain)).toEqual(['nonmonotonic-poll']);
    const beforeFrom = checkHistory(history(abc(), poll(5, Q, [[0, 'a']], 1), drainAbc()));
    expect(foundKinds(beforeFrom)).toEqual(['nonmonotonic-poll']);
  });

  it('poll-skip: successive polls jump over an existing offset', () => {
    const report = checkHistory(history(abc(), poll(5, Q, [[0, 'a']]), poll(5, Q, [[2, 'c']]), drainAbc()));
    expect(foundKinds(report)).toEqual(['poll-skip']);
    expect(report.anomalies['poll-skip'][0]).toMatchObject({ process: 5, afterOffset: 0, nextOffset: 2, skippedOffsets: [1], skippedCount: 1 });
  });

  it('poll-skip: within one poll, from a poll\'s `from`, and a drain lacking an offset a poll showed', () => {
    const within = checkHistory(history(abc(), poll(5, Q, [[0, 'a'], [2, 'c']]), drainAbc()));
    expect(foundKinds(within)).toEqual(['poll-skip']);
    const fromGap = checkHistory(history(abc(), poll(5, Q, [[2, 'c']], 1), drainAbc()));
    expect(foundKinds(fromGap)).toEqual(['poll-skip']);
    // x was an info send: its absence from the drain is not `lost`, but a poll saw it at offset 0.
    const drainGap = checkHistory(history(sendInvoke(0, Q, 'x'), sendInfo(0, Q, 'x'), send(1, Q, 'b', 1), poll(5, Q, [[0, 'x']]), drain(9, Q, [[1, 'b']])));
    expect(foundKinds(drainGap)).toEqual(['poll-skip']);
    expect(drainGap.anomalies['poll-skip'][0]).toMatchObject({ queue: Q, skippedOffsets: [0], read: { f: 'drain' } });
  });

  it('poll-skip: a poll that moves over offsets retention deleted (below its minOffset) skips nothing, above them it does', () => {
    const polled = (minOffset: number, messages: [number, string][]): Step[] => [
      pollInvoke(5, Q),
      { type: 'ok', process: 5, f: 'poll', value: { queue: Q, messages: messages.map(([offset, body]) => ({ offset, body })), minOffset } },
    ];
    // Process 6 saw offset 1 before retention deleted it; process 5 continues after offset 0.
    const moved = checkHistory(history(abc(), poll(5, Q, [[0, 'a']]), poll(6, Q, [[1, 'b']], 1), polled(2, [[2, 'c']]), drainAbc()));
    expect(foundKinds(moved)).toEqual([]);
    const short = checkHistory(history(abc(), poll(5, Q, [[0, 'a']]), poll(6, Q, [[1, 'b']], 1), polled(1, [[2, 'c']]), drainAbc()));
    expect(foundKinds(short)).toEqual(['poll-skip']);
    expect(short.anomalies['poll-skip'][0]).toMatchObject({ process: 5, afterOffset: 0, nextOffset: 2, skippedOffsets: [1] });
  });
});

describe('checker – a drain after retention deleted the start of its queue', () => {
  const sends = (): Step[] => [send(0, Q, 'a', 0), send(0, Q, 'b', 1), send(0, Q, 'c', 2), send(0, Q, 'd', 3)].flat();

  it('an acked send below the drain\'s minOffset is retained away, not lost; at or above it, missing is lost', () => {
    const report = checkHistory(history(sends(), poll(5, Q, [[0, 'a']]), drain(9, Q, [[3, 'd']], 2)));
    expect(foundKinds(report)).toEqual(['lost']);
    expect(report.anomalies.lost.map((l) => l.body)).toEqual(['c']);
    expect(report.retainedAwaySends).toEqual({ count: 2, readBeforeRetention: 1 });
    const retained = checkHistory(history(sends(), poll(5, Q, [[0, 'a']]), drain(9, Q, [[2, 'c'], [3, 'd']], 2)));
    expect(retained.verdict).toBe('valid');
    expect(retained.retainedAwaySends).toEqual({ count: 2, readBeforeRetention: 1 });
    expect(formatReport(retained)).toContain('2 acked send(s) were deleted by retention before the final drain (not judged for loss; 1 of them read before)');
  });

  it('two acks naming one offset below the minOffset are not excused as retained', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), send(0, Q, 'b', 0), send(0, Q, 'c', 1), drain(9, Q, [[1, 'c']], 1)));
    expect(report.counts.lost).toBe(2);
    expect(report.retainedAwaySends.count).toBe(0);
  });

  it('the drain lacking offsets below its minOffset that polls showed is no skip; lacking one above is', () => {
    const below = checkHistory(history(sends(), poll(5, Q, [[0, 'a'], [1, 'b'], [2, 'c']]), drain(9, Q, [[2, 'c'], [3, 'd']], 2)));
    expect(foundKinds(below)).toEqual([]);
    const above = checkHistory(history(sends(), poll(5, Q, [[0, 'a'], [1, 'b'], [2, 'c']]), drain(9, Q, [[3, 'd']], 1)));
    expect(foundKinds(above).sort()).toEqual(['lost', 'poll-skip']);
    expect(above.anomalies['poll-skip'][0]).toMatchObject({ skippedOffsets: [1, 2], read: { f: 'drain' } });
  });

  it('a null-offset ack no read placed cannot be judged once retention moved the start; one a read placed can', () => {
    const unplaced = checkHistory(history(send(0, Q, 'a', null), send(0, Q, 'b', null), drain(9, Q, [[1, 'b']], 1)));
    expect(unplaced.verdict).toBe('unknown');
    expect(unplaced.uncheckedAckedSends).toBe(1);
    expect(unplaced.counts.lost).toBe(0);
    const placed = checkHistory(history(send(0, Q, 'a', null), send(0, Q, 'b', null), poll(5, Q, [[0, 'a']]), drain(9, Q, [[1, 'b']], 1)));
    expect(placed.verdict).toBe('valid');
    expect(placed.retainedAwaySends).toEqual({ count: 1, readBeforeRetention: 1 });
    const nothingMoved = checkHistory(history(send(0, Q, 'a', null), send(0, Q, 'b', null), drain(9, Q, [[1, 'b']], 0)));
    expect(foundKinds(nothingMoved)).toEqual(['lost']);
  });
});

describe('checker – acks without an offset (leader quorum)', () => {
  it('a null-offset ok is still judged for lost, and its loss is described without an offset', () => {
    const report = checkHistory(history(send(0, Q, 'a', null), send(0, Q, 'b', null), drain(9, Q, [[0, 'a']])));
    expect(foundKinds(report)).toEqual(['lost']);
    expect(report.anomalies.lost[0]).toMatchObject({ body: 'b', queue: Q, ackedOffset: undefined });
    expect(report.anomalies.lost[0]!.description).toContain('acked at orders/1 without an offset');
  });

  it('a null-offset ok cannot mismatch, and is placed for reorder only by reads', () => {
    // b's ack names no offset and no read shows it: no offset-mismatch, no reorder, but lost.
    const unread = checkHistory(history(send(0, Q, 'a', 0), send(0, Q, 'b', null), drain(9, Q, [[0, 'a']])));
    expect(foundKinds(unread)).toEqual(['lost']);
    // a read shows null-offset b before a, though b was acked before a was invoked: reorder.
    const reordered = checkHistory(history(send(0, Q, 'b', null), send(0, Q, 'a', null), drain(9, Q, [[0, 'a'], [1, 'b']])));
    expect(foundKinds(reordered)).toEqual(['reorder']);
    expect(checkHistory(history(send(0, Q, 'a', null), send(0, Q, 'b', null), drain(9, Q, [[0, 'a'], [1, 'b']]))).valid).toBe(true);
  });
});

describe('checker – valid look-alikes are not anomalies', () => {
  const expectValid = (events: HistoryEvent[]): void => {
    const report = checkHistory(events);
    expect(report.counts).toEqual(Object.fromEntries(Object.keys(report.counts).map((k) => [k, 0])));
    expect(report.verdict).toBe('valid');
    expect(report.valid).toBe(true);
  };

  it('an info send that landed, and one that did not', () => {
    expectValid(history(sendInvoke(0, Q, 'a'), sendInfo(0, Q, 'a'), sendInvoke(1, Q, 'b'), sendInfo(1, Q, 'b'), send(2, Q, 'c', 1), drain(9, Q, [[0, 'a'], [1, 'c']])));
  });

  it('an info send that landed AFTER a later acked send', () => {
    expectValid(history(sendInvoke(0, Q, 'a'), sendInfo(0, Q, 'a'), send(1, Q, 'b', 0), drain(9, Q, [[0, 'b'], [1, 'a']])));
  });

  it('overlapping sends land in either order', () => {
    const overlap = (first: number, second: number): Step[] => [
      sendInvoke(0, Q, 'a'), sendInvoke(1, Q, 'b'), sendOk(0, Q, 'a', first), sendOk(1, Q, 'b', second),
    ];
    expectValid(history(overlap(0, 1), drain(9, Q, [[0, 'a'], [1, 'b']])));
    expectValid(history(overlap(1, 0), drain(9, Q, [[0, 'b'], [1, 'a']])));
    // B invoked while A is in flight and completing first, landing first.
    expectValid(history(sendInvoke(0, Q, 'a'), send(1, Q, 'b', 0), sendOk(0, Q, 'a', 1), drain(9, Q, [[0, 'b'], [1, 'a']])));
  });

  it('redelivery to a NEW process after a consumer restart, and the same offset read by two processes', () => {
    expectValid(
      history(send(0, Q, 'a', 0), send(0, Q, 'b', 1), poll(5, Q, [[0, 'a'], [1, 'b']]), poll(6, Q, [[0, 'a'], [1, 'b']]), poll(7, Q, [[1, 'b']]), drain(9, Q, [[0, 'a'], [1, 'b']])),
    );
  });

  it('a consumer starting mid-queue, and a poll resuming at a committed offset after a rebalance', () => {
    expectValid(
      history(
        send(0, Q, 'a', 0), send(0, Q, 'b', 1), send(0, Q, 'c', 2),
        poll(5, Q, [[2, 'c']]),
        poll(6, Q, [[0, 'a'], [1, 'b'], [2, 'c']]),
        poll(6, Q, [[1, 'b'], [2, 'c']], 1), // the queue came back to process 6 at committed offset 1
        drain(9, Q, [[0, 'a'], [1, 'b'], [2, 'c']]),
      ),
    );
  });

  it('empty and failed polls between a process\'s polls, and gaps where no offset exists', () => {
    expectValid(
      history(
        send(0, Q, 'a', 0), send(0, Q, 'b', 5),
        poll(5, Q, [[0, 'a']]),
        poll(5, Q, []),
        pollInvoke(5, Q), { type: 'fail', process: 5, f: 'poll', value: { queue: Q } },
        poll(5, Q, [[5, 'b']]),
        drain(9, Q, [[0, 'a'], [5, 'b']]),
      ),
    );
  });

  it('operations still in flight at the end count as info', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), sendInvoke(1, Q, 'b'), drain(9, Q, [[0, 'a']]), pollInvoke(5, Q)));
    expect(report.verdict).toBe('valid');
    expect(report.stats).toMatchObject({ sends: 2, acked: 1, info: 1, incomplete: 2, polls: 1 });
  });

  it('an empty history is valid with no operations', () => {
    const report = checkHistory([]);
    expect(report.verdict).toBe('valid');
    expect(report.stats.events).toBe(0);
    expect(formatReport(report)).toBe('VALID: no operations in the history\n');
  });
});

describe('checker – what cannot be judged is not valid', () => {
  it('a queue that was sent to but never drained makes the verdict unknown', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), send(0, 'q2', 'b', 0), drain(9, Q, [[0, 'a']])));
    expect(report.verdict).toBe('unknown');
    expect(report.valid).toBe(false);
    expect(report.undrainedQueues).toEqual(['q2']);
    expect(report.uncheckedAckedSends).toBe(1);
    expect(formatReport(report)).toMatch(/^UNKNOWN: .*\n.*\n {2}never drained \(lost cannot be judged there\): q2\n$/);
  });

  it('an acked send still running when the final drain began cannot be judged', () => {
    const report = checkHistory(history(sendInvoke(0, Q, 'a'), { type: 'invoke', process: 9, f: 'drain', value: { queue: Q } }, sendOk(0, Q, 'a', 0), { type: 'ok', process: 9, f: 'drain', value: { queue: Q, messages: [] } }));
    expect(report.verdict).toBe('unknown');
    expect(report.uncheckedAckedSends).toBe(1);
    expect(report.counts.lost).toBe(0);
  });

  it('a failed drain is not a drain', () => {
    const report = checkHistory(history(send(0, Q, 'a', 0), { type: 'invoke', process: 9, f: 'drain', value: { queue: Q } }, { type: 'fail', process: 9, f: 'drain', value: { queue: Q } }));
    expect(report.undrainedQueues).toEqual([Q]);
    expect(report.verdict).toBe('unknown');
  });

  it('the human summary lists each anomaly with its examples', () => {
    const text = formatReport(checkHistory(history(send(0, Q, 'a', 0), send(0, Q, 'b', 1), drain(9, Q, [[0, 'a']]))));
    expect(text).toBe(
      'INVALID: 1 anomaly\n' +
        '  2 sends (2 ok, 0 fail, 0 info, 0 incomplete ops), 0 polls, 1 drains, 1 messages read, 1 queues\n' +
        '  lost: 1\n' +
        '    - send "b" acked at orders/1 offset 1 (send ok by process 0 at line 4 (time 30)) is missing from the final drain (drain ok by process 9 at line 6 (time 50))\n',
    );
  });

  it('keeps at most 5 examples but counts every occurrence', () => {
    const sends = Array.from({ length: 8 }, (_, i) => send(0, Q, `m${i}`, i)).flat();
    const report = checkHistory(history(sends, drain(9, Q, [])));
    expect(report.counts.lost).toBe(8);
    expect(report.anomalies.lost).toHaveLength(5);
    expect(formatReport(report)).toMatch(/… and 3 more/);
  });
});

describe('checker – a malformed history is an error naming the line', () => {
  const badInput = (events: unknown[]): string => {
    try {
      checkHistory(events as HistoryEvent[]);
    } catch (error) {
      expect(error).toBeInstanceOf(LmqError);
      expect((error as LmqError).code).toBe('LMQ_BAD_INPUT');
      expect((error as LmqError).exitCode).toBe(2);
      return (error as LmqError).message;
    }
    throw new Error('the malformed history was accepted');
  };
  const inv = sendInvoke(0, Q, 'a');

  it.each([
    ['a completion without invoke', [sendOk(0, Q, 'a', 0)], /^history:1: ok send by process 0 has no invoke before it$/],
    ['two invokes by one process', [inv, sendInvoke(0, Q, 'b')], /^history:2: process 0 invokes send while its send from line 1 has not completed/],
    ['an unknown type', [{ ...inv, type: 'done' }], /^history:1: type must be one of invoke, ok, fail, info, not "done"$/],
    ['an unknown f', [{ ...inv, f: 'write' }], /^history:1: f must be one of send, poll, drain, consume, dlq, leader, receive, ack, txsend, txend, not "write"$/],
    ['a missing process', [{ type: 'invoke', f: 'send', value: { queue: Q, body: 'a' }, time: 0 }], /^history:1: process must be a non-negative integer/],
    ['a string offset', [inv, { ...sendOk(0, Q, 'a', 0), value: { queue: Q, body: 'a', offset: '0' } }], /^history:2: value.offset must be a non-negative integer, not "0"$/],
    ['an ok send without offset', [inv, { ...sendOk(0, Q, 'a', 0), value: { queue: Q, body: 'a' } }], /^history:2: an ok send must name value.offset/],
    ['a null offset on a failed send', [inv, { ...sendFail(0, Q, 'a'), value: { queue: Q, body: 'a', offset: null } }], /^history:2: value.offset is not allowed here/],
    ['an offset on a failed send', [inv, { ...sendFail(0, Q, 'a'), value: { queue: Q, body: 'a', offset: 3 } }], /^history:2: value.offset is not allowed here/],
    ['a missing body', [{ ...inv, value: { queue: Q } }], /^history:1: value.body must be a string, not undefined$/],
    ['an empty queue', [sendInvoke(0, '', 'a')], /^history:1: value.queue must not be empty$/],
    ['messages that are not an array', [pollInvoke(5, Q), { ...pollOk(5, Q, []), value: { queue: Q, messages: {} } }], /^history:2: value.messages must be an array, not object$/],
    ['a message without body', [pollInvoke(5, Q), { ...pollOk(5, Q, []), value: { queue: Q, messages: [{ offset: 1 }] } }], /^history:2: value.messages\[0\].body must be a string/],
    ['time going backwards', [{ ...inv, time: 5 }, { ...sendOk(0, Q, 'a', 0), time: 4 }], /^history:2: time 4 is earlier than the previous event's time 5/],
    ['a completion of another f', [inv, pollOk(0, Q, [])], /^history:2: ok poll completes process 0's send from line 1; f must match$/],
    ['a completion naming another queue', [inv, sendOk(0, 'q2', 'a', 0)], /^history:2: ok names queue "q2" but its invoke at line 1 named "orders\/1"$/],
    ['a body sent twice', [...send(0, Q, 'a', 0), inv], /^history:3: body "a" was already sent at line 1; bodies must be unique per send$/],
    ['a process acting after its info', [inv, sendInfo(0, Q, 'a'), pollInvoke(0, Q)], /^history:3: process 0 invokes poll after its operation ended info at line 2; after an info a client goes on under a new process number$/],
    ['an event that is not an object', [[1, 2]], /^history:1: an event must be a JSON object, not an array$/],
  ])('%s', (_name, events, message) => {
    const timed = (events as object[]).map((e, i) => (Array.isArray(e) ? e : { time: i, ...e }));
    expect(badInput(timed)).toMatch(message);
  });
});

describe('checker – reading a history file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-checker-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('streams JSON Lines, skipping blank lines, with the same verdict as in memory', async () => {
    const events = history(send(0, Q, 'a', 0), send(0, Q, 'b', 1), drain(9, Q, [[0, 'a']]));
    const path = write('h.jsonl', events.map((e) => JSON.stringify(e)).join('\n') + '\n\n');
    const report = await checkHistoryFile(path);
    expect(report).toEqual(checkHistory(events));
  });

  it('names the file and line of bad JSON', async () => {
    const path = write('bad.jsonl', `${JSON.stringify(history(sendInvoke(0, Q, 'a'))[0])}\n{"type":"ok",\n`);
    await expect(checkHistoryFile(path)).rejects.toThrow(new RegExp(`^${path}:2: not valid JSON`));
  });

  it('a missing file is bad input', async () => {
    await expect(checkHistoryFile(join(dir, 'nope.jsonl'))).rejects.toMatchObject({ code: 'LMQ_BAD_INPUT', message: expect.stringMatching(/ENOENT/) });
  });
});
