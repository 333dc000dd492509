import { describe, expect, it } from 'vitest';
import { checkHistory, type HistoryEvent } from '../src/checker/index.js';
import { drain, foundKinds, history, send, type Step } from './checker-helpers.js';

const Q = 'orders/0';
const RETRY = '%RETRY%g/0';
const DLQ = '%DLQ%g/0';

/** One listener call of `body` (copy at queue/offset, redelivery k) that ended with `result` (undefined: info). */
function consume(process: number, queue: string, offset: number, body: string, k: number, max: number, result?: 'SUCCESS' | 'RECONSUME_LATER'): Step[] {
  const value = { queue, offset, body, reconsumeTimes: k, maxReconsumeTimes: max };
  return [
    { type: 'invoke', process, f: 'consume', value },
    result === undefined ? { type: 'info', process, f: 'consume', value } : { type: 'ok', process, f: 'consume', value: { ...value, result } },
  ];
}

function dlq(process: number, letters: [number, string, number][]): Step[] {
  return [
    { type: 'invoke', process, f: 'dlq', value: { queue: DLQ } },
    { type: 'ok', process, f: 'dlq', value: { queue: DLQ, messages: letters.map(([offset, body, attempts]) => ({ offset, body, attempts })) } },
  ];
}

/** "a" fails twice and succeeds on its second retry; "b" fails max + 1 = 2 times and is dead-lettered. */
function validRetryHistory(): Step[][] {
  return [
    send(0, Q, 'a', 0),
    send(0, Q, 'b', 1),
    consume(1, Q, 0, 'a', 0, 1, 'RECONSUME_LATER'),
    consume(1, Q, 1, 'b', 0, 1, 'RECONSUME_LATER'),
    consume(1, RETRY, 0, 'a', 1, 1, 'SUCCESS'),
    consume(1, RETRY, 1, 'b', 1, 1, 'RECONSUME_LATER'),
    drain(2, Q, [[0, 'a'], [1, 'b']]),
    dlq(3, [[0, 'b', 2]]),
  ];
}

describe('checker – consumption: retries and dead letters', () => {
  it('a history where each failed message is retried or dead-lettered in time is valid', () => {
    const report = checkHistory(history(...validRetryHistory()));
    expect(foundKinds(report)).toEqual([]);
    expect(report.verdict).toBe('valid');
  });

  it('a consumer killed mid-listener redelivers the same copy: no anomaly', () => {
    const steps = validRetryHistory();
    steps.splice(2, 0, consume(4, Q, 0, 'a', 0, 1), consume(5, Q, 0, 'a', 0, 1, 'RECONSUME_LATER'));
    expect(foundKinds(checkHistory(history(...steps)))).toEqual([]);
  });

  it('lost-retry: a failed message that never came back and is in no dead-letter queue', () => {
    const steps = validRetryHistory();
    steps.splice(4, 1); // "a"'s retry is never delivered
    const report = checkHistory(history(...steps));
    expect(foundKinds(report)).toEqual(['lost-retry']);
    expect(report.anomalies['lost-retry'][0]).toMatchObject({ body: 'a', deliveries: 1 });
  });

  it('lost-retry is unjudged (verdict unknown) without a final dead-letter read', () => {
    const steps = validRetryHistory().slice(0, -1);
    const report = checkHistory(history(...steps));
    expect(report.verdict).toBe('unknown');
    expect(report.uncheckedRetrySends).toBe(2);
  });

  it('retry-exceeded: a delivery past maxReconsumeTimes, and a retry stored twice', () => {
    const past = validRetryHistory();
    past.splice(6, 0, consume(1, RETRY, 2, 'b', 2, 1, 'RECONSUME_LATER'));
    expect(foundKinds(checkHistory(history(...past)))).toEqual(['retry-exceeded']);

    const twice = validRetryHistory();
    twice.splice(5, 0, consume(1, RETRY, 2, 'a', 1, 1, 'SUCCESS')); // a second copy of "a"'s first retry
    const report = checkHistory(history(...twice));
    expect(foundKinds(report)).toEqual(['retry-exceeded']);
    expect(report.anomalies['retry-exceeded'][0]).toMatchObject({ body: 'a', copies: 3 });
  });

  it('dlq-early: dead-lettered before every allowed delivery failed, or with too few attempts', () => {
    const early = validRetryHistory();
    early.splice(5, 1); // "b"'s retry never failed, yet "b" is in the DLQ
    expect(foundKinds(checkHistory(history(...early)))).toEqual(['dlq-early']);

    const fewAttempts = validRetryHistory();
    fewAttempts[fewAttempts.length - 1] = dlq(3, [[0, 'b', 1]]);
    const report = checkHistory(history(...fewAttempts));
    expect(foundKinds(report)).toEqual(['dlq-early']);
    expect(report.anomalies['dlq-early'][0]).toMatchObject({ body: 'b', attempts: 1, maxReconsumeTimes: 1 });
  });

  it('refuses a consume completion that names another copy than its invoke', () => {
    const events: HistoryEvent[] = history(consume(1, Q, 0, 'a', 0, 1, 'SUCCESS'));
    (events[1]!.value as { offset: number }).offset = 3;
    expect(() => checkHistory(events)).toThrow(/names another offset or reconsumeTimes/);
  });
});

/** A delayed send due `delayMs` after its invoke (history time = step index × 10, see history()). */
function delayedSend(process: number, body: string, delayMs: number, deliverAtMs: number): Step[] {
  return [
    { type: 'invoke', process, f: 'send', value: { queue: Q, body, delayMs, deliverAtMs } },
    { type: 'ok', process, f: 'send', value: { queue: Q, body, offset: null } },
  ];
}

function pollStored(process: number, messages: [number, string, number][]): Step[] {
  return [
    { type: 'invoke', process, f: 'poll', value: { queue: Q } },
    { type: 'ok', process, f: 'poll', value: { queue: Q, messages: messages.map(([offset, body, storeTimestampMs]) => ({ offset, body, storeTimestampMs })) } },
  ];
}

function leaderSample(process: number, leader: string | null): Step[] {
  return [
    { type: 'invoke', process, f: 'leader', value: {} },
    { type: 'ok', process, f: 'leader', value: { leader } },
  ];
}

/** `gap` empty steps: each moves the history clock on by 10 ms. */
function wait(process: number, gap: number): Step[][] {
  return Array.from({ length: gap / 2 }, () => leaderSample(process, 'n1'));
}

describe('checker – consumption: delayed messages', () => {
  const T0 = 1_000_000; // the wall clock (epoch ms) at history time 0

  it('a delayed message read after it was due and stored on time is valid', () => {
    // Invoked at history time 0 with a 100 ms delay; read at ≥ 120 ms; stored 30 ms after due.
    const report = checkHistory(history(delayedSend(0, 'd', 100, T0 + 100), ...wait(1, 10), pollStored(2, [[0, 'd', T0 + 130]]), drain(3, Q, [[0, 'd']])));
    expect(foundKinds(report)).toEqual([]);
    expect(report.verdict).toBe('valid');
  });

  it('early-delivery: read before due, or stored before deliverAtMs', () => {
    const readEarly = checkHistory(history(delayedSend(0, 'd', 1_000, T0 + 1_000), pollStored(2, [[0, 'd', T0 + 1_000]]), drain(3, Q, [[0, 'd']])));
    expect(foundKinds(readEarly)).toEqual(['early-delivery']);
    const storedEarly = checkHistory(history(delayedSend(0, 'd', 20, T0 + 20), ...wait(1, 4), pollStored(2, [[0, 'd', T0 + 20 - 500]]), drain(3, Q, [[0, 'd']])));
    expect(foundKinds(storedEarly)).toEqual(['early-delivery']);
    expect(storedEarly.anomalies['early-delivery'][0]).toMatchObject({ body: 'd', earlyMs: 500 });
  });

  it('late-delivery: stored more than 5 s after due while a leader existed, excused while none did', () => {
    const late = T0 + 20 + 5_000 + 200;
    const withLeader = checkHistory(history(delayedSend(0, 'd', 20, T0 + 20), leaderSample(1, 'n1'), pollStored(2, [[0, 'd', late]]), drain(3, Q, [[0, 'd']])));
    expect(foundKinds(withLeader)).toEqual(['late-delivery']);
    expect(withLeader.anomalies['late-delivery'][0]).toMatchObject({ body: 'd', lateMs: 5_200 });

    // No leader from history time 20 on (the sample at 20 says none, and none says otherwise).
    const leaderless = checkHistory(history(delayedSend(0, 'd', 20, T0 + 20), leaderSample(1, null), pollStored(2, [[0, 'd', late]]), drain(3, Q, [[0, 'd']])));
    expect(foundKinds(leaderless)).toEqual([]);
  });
});

describe('checker – consumption: orderly', () => {
  function orderly(process: number, offset: number, body: string, k: number, result?: 'SUCCESS' | 'SUSPEND'): Step[] {
    const value = { queue: Q, offset, body, reconsumeTimes: k, maxReconsumeTimes: 1000, orderly: true as const };
    return [
      { type: 'invoke', process, f: 'consume', value },
      result === undefined ? { type: 'info', process, f: 'consume', value } : { type: 'ok', process, f: 'consume', value: { ...value, result } },
    ];
  }
  const sends = [send(0, Q, 'a', 0), send(0, Q, 'b', 1)];

  it('suspends retried in place, then the next message: valid', () => {
    const report = checkHistory(history(...sends, orderly(1, 0, 'a', 0, 'SUSPEND'), orderly(1, 0, 'a', 1, 'SUCCESS'), orderly(1, 1, 'b', 0, 'SUCCESS'), drain(2, Q, [[0, 'a'], [1, 'b']])));
    expect(foundKinds(report)).toEqual([]);
  });

  it('orderly-overlap: two calls of one queue at once', () => {
    const [invokeA, okA] = orderly(1, 0, 'a', 0, 'SUCCESS');
    const [invokeB, okB] = orderly(2, 1, 'b', 0, 'SUCCESS');
    const report = checkHistory(history(...sends, invokeA!, invokeB!, okA!, okB!, drain(3, Q, [[0, 'a'], [1, 'b']])));
    expect(foundKinds(report)).toEqual(['orderly-overlap']);
    // b also began before a had succeeded: one example for each rule.
    expect(report.counts['orderly-overlap']).toBe(2);
  });

  it('orderly-overlap: a message processed after its predecessor was suspended, not succeeded', () => {
    const report = checkHistory(history(...sends, orderly(1, 0, 'a', 0, 'SUSPEND'), orderly(1, 1, 'b', 0, 'SUCCESS'), orderly(1, 0, 'a', 1, 'SUCCESS'), drain(2, Q, [[0, 'a'], [1, 'b']])));
    expect(foundKinds(report)).toEqual(['orderly-overlap']);
    expect(report.counts['orderly-overlap']).toBe(1);
  });

  it('a killed consumer\'s call ends at its info: the next owner may start after it', () => {
    const report = checkHistory(history(...sends, orderly(1, 0, 'a', 0), orderly(2, 0, 'a', 0, 'SUCCESS'), orderly(2, 1, 'b', 0, 'SUCCESS'), drain(3, Q, [[0, 'a'], [1, 'b']])));
    expect(foundKinds(report)).toEqual([]);
  });
});

describe('checker – consumption: delayed sends and queue order', () => {
  it('a delayed send placed after later sends is no reorder; an undelayed one still is', () => {
    const steps = (delayMs: number) => [
      [
        { type: 'invoke', process: 0, f: 'send', value: { queue: Q, body: 'late', delayMs, deliverAtMs: 1_000 + delayMs } },
        { type: 'ok', process: 0, f: 'send', value: { queue: Q, body: 'late', offset: null } },
      ] as Step[],
      send(1, Q, 'now', 0),
      drain(2, Q, [[0, 'now'], [1, 'late']]),
    ];
    expect(foundKinds(checkHistory(history(...steps(10))))).toEqual([]);
    expect(foundKinds(checkHistory(history(...steps(0))))).toEqual(['reorder']);
  });
});

describe('checker – consumption: simple consumers (receive and ack)', () => {
  const MAX = 1;
  /** One receive by `process` that handed out these [queue, offset, body, attempt] (none: it ended info). */
  function receive(process: number, messages?: [string, number, string, number][]): Step[] {
    const value = { maxReconsumeTimes: MAX };
    return [
      { type: 'invoke', process, f: 'receive', value },
      messages === undefined
        ? { type: 'info', process, f: 'receive', value }
        : { type: 'ok', process, f: 'receive', value: { ...value, messages: messages.map(([queue, offset, body, attempt]) => ({ queue, offset, body, attempt })) } },
    ];
  }
  function ack(process: number, offset: number, body: string, outcome: 'ok' | 'fail' | 'info'): Step[] {
    const value = { queue: Q, offset, body };
    return [
      { type: 'invoke', process, f: 'ack', value },
      { type: outcome, process, f: 'ack', value },
    ];
  }
  /** "a" is acked at its first delivery; "b" expires once, is acked at its second; "c" expires twice and is dead-lettered. */
  function validSimpleHistory(): Step[][] {
    return [
      send(0, Q, 'a', 0),
      send(0, Q, 'b', 1),
      send(0, Q, 'c', 2),
      receive(1, [[Q, 0, 'a', 1], [Q, 1, 'b', 1], [Q, 2, 'c', 1]]),
      ack(1, 0, 'a', 'ok'),
      receive(2, [[Q, 1, 'b', 2], [Q, 2, 'c', 2]]),
      ack(1, 1, 'b', 'fail'), // process 1's receipt for "b" went stale when process 2 received it
      ack(2, 1, 'b', 'ok'),
      receive(2, []),
      drain(3, Q, [[0, 'a'], [1, 'b'], [2, 'c']]),
      dlq(4, [[0, 'c', 2]]),
    ];
  }

  it('expired messages received again, stale acks refused, the last expiry dead-lettered: valid', () => {
    const report = checkHistory(history(...validSimpleHistory()));
    expect(foundKinds(report)).toEqual([]);
    expect(report.verdict).toBe('valid');
  });

  it('ack-lost: a message received again after its ack was confirmed', () => {
    const steps = validSimpleHistory();
    steps.splice(8, 1, receive(2, [[Q, 0, 'a', 2]]));
    const report = checkHistory(history(...steps));
    expect(foundKinds(report)).toEqual(['ack-lost']);
    expect(report.anomalies['ack-lost'][0]).toMatchObject({ body: 'a' });
  });

  it('no ack-lost when the receive began before the ack was confirmed, or the ack stayed unknown', () => {
    const racing = validSimpleHistory();
    // Process 2 invokes its receive; "a"'s ack completes; the receive returns "a" (its invisible duration ran out first).
    racing.splice(4, 2, [
      { type: 'invoke', process: 2, f: 'receive', value: { maxReconsumeTimes: MAX } },
      { type: 'invoke', process: 1, f: 'ack', value: { queue: Q, offset: 0, body: 'a' } },
      { type: 'ok', process: 1, f: 'ack', value: { queue: Q, offset: 0, body: 'a' } },
      { type: 'ok', process: 2, f: 'receive', value: { maxReconsumeTimes: MAX, messages: [{ queue: Q, offset: 0, body: 'a', attempt: 2 }, { queue: Q, offset: 1, body: 'b', attempt: 2 }, { queue: Q, offset: 2, body: 'c', attempt: 2 }] } },
    ]);
    expect(foundKinds(checkHistory(history(...racing)))).toEqual([]);

    const unknown = validSimpleHistory();
    unknown.splice(4, 1, ack(5, 0, 'a', 'info'));
    unknown.splice(8, 1, receive(2, [[Q, 0, 'a', 2]]), ack(2, 0, 'a', 'ok'));
    expect(foundKinds(checkHistory(history(...unknown)))).toEqual([]);
  });

  it('lost-retry: a received message never acked, expired for good, and in no dead-letter queue', () => {
    const steps = validSimpleHistory();
    steps.splice(10, 1, dlq(4, []));
    const report = checkHistory(history(...steps));
    expect(foundKinds(report)).toEqual(['lost-retry']);
    expect(report.anomalies['lost-retry'][0]).toMatchObject({ body: 'c', deliveries: 2 });
  });

  it('retry-exceeded and dlq-early judge delivery attempts against maxReconsumeTimes + 1', () => {
    const exceeded = validSimpleHistory();
    exceeded.splice(8, 1, receive(2, [[Q, 2, 'c', 3]]));
    expect(foundKinds(checkHistory(history(...exceeded)))).toEqual(['retry-exceeded']);

    const early = validSimpleHistory();
    early.splice(10, 1, dlq(4, [[0, 'c', 1]]));
    expect(foundKinds(checkHistory(history(...early)))).toEqual(['dlq-early']);
  });

  it('refuses a receive message without a delivery attempt from 1', () => {
    const steps = validSimpleHistory();
    steps.splice(8, 1, receive(2, [[Q, 2, 'c', 0]]));
    expect(() => checkHistory(history(...steps))).toThrow(/attempt counts deliveries from 1/);
  });
});
