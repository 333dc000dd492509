import { describe, expect, it } from 'vitest';
import { checkHistory, parseHistoryEvent } from '../src/checker/index.js';
import { drain, foundKinds, history, poll, type Step } from './checker-helpers.js';

/** A keyed send that names its topic: the producer picks the queue (`ok` at queue/offset, or `info`). */
function keyedSend(process: number, key: string, body: string, stored: [string, number] | 'info'): Step[] {
  const invoke: Step = { type: 'invoke', process, f: 'send', value: { topic: 't', key, body } };
  if (stored === 'info') return [invoke, { type: 'info', process, f: 'send', value: { topic: 't', key, body } }];
  return [invoke, { type: 'ok', process, f: 'send', value: { queue: stored[0], body, offset: stored[1] } }];
}

describe('checker – a key\'s order across queues (topics that grew)', () => {
  it('a key that moved from t/0 to t/2 after its old message was consumed is valid; its sends are judged in the queues their oks name', () => {
    const report = checkHistory(history(
      keyedSend(0, 'k', 'a', ['t/0', 0]),
      poll(1, 't/0', [[0, 'a']]),
      keyedSend(0, 'k', 'b', ['t/2', 0]),
      keyedSend(0, 'k', 'c', 'info'), // unknown outcome: may be in any queue of t
      poll(2, 't/2', [[0, 'b'], [1, 'c']]),
      drain(3, 't/0', [[0, 'a']]),
      drain(3, 't/2', [[0, 'b'], [1, 'c']]),
    ));
    expect(foundKinds(report)).toEqual([]);
    expect(report.verdict).toBe('valid');
    expect(report.stats.acked).toBe(2);
  });

  it('key-reorder: a poll returned the key\'s later message from its new queue before any read of the earlier one', () => {
    const report = checkHistory(history(
      keyedSend(0, 'k', 'a', ['t/0', 0]),
      keyedSend(0, 'k', 'b', ['t/2', 0]),
      poll(2, 't/2', [[0, 'b']]),
      poll(1, 't/0', [[0, 'a']]),
      drain(3, 't/0', [[0, 'a']]),
      drain(3, 't/2', [[0, 'b']]),
    ));
    expect(foundKinds(report)).toEqual(['key-reorder']);
    expect(report.counts['key-reorder']).toBe(1);
    expect(report.anomalies['key-reorder'][0]).toMatchObject({ key: 'k', earlier: { body: 'a', queue: 't/0' }, later: { body: 'b', queue: 't/2' } });
  });

  it('is no key-reorder when the sends overlapped, when the keys differ, or when only the drains read the later one', () => {
    const overlapping = history(
      { type: 'invoke', process: 0, f: 'send', value: { topic: 't', key: 'k', body: 'a' } },
      { type: 'invoke', process: 4, f: 'send', value: { topic: 't', key: 'k', body: 'b' } },
      { type: 'ok', process: 0, f: 'send', value: { queue: 't/0', body: 'a', offset: 0 } },
      { type: 'ok', process: 4, f: 'send', value: { queue: 't/2', body: 'b', offset: 0 } },
      poll(2, 't/2', [[0, 'b']]),
      poll(1, 't/0', [[0, 'a']]),
      drain(3, 't/0', [[0, 'a']]),
      drain(3, 't/2', [[0, 'b']]),
    );
    const otherKeys = history(
      keyedSend(0, 'k1', 'a', ['t/0', 0]),
      keyedSend(0, 'k2', 'b', ['t/2', 0]),
      poll(2, 't/2', [[0, 'b']]),
      poll(1, 't/0', [[0, 'a']]),
      drain(3, 't/0', [[0, 'a']]),
      drain(3, 't/2', [[0, 'b']]),
    );
    const drainsOnly = history(
      keyedSend(0, 'k', 'a', ['t/0', 0]),
      keyedSend(0, 'k', 'b', ['t/2', 0]),
      drain(3, 't/2', [[0, 'b']]),
      drain(3, 't/0', [[0, 'a']]),
    );
    for (const events of [overlapping, otherKeys, drainsOnly]) expect(foundKinds(checkHistory(events))).toEqual([]);
  });

  it('a keyed send acked in one queue and read in another is offset-mismatch and unexpected, as a queued send would be', () => {
    const report = checkHistory(history(
      keyedSend(0, 'k', 'a', ['t/0', 0]),
      drain(3, 't/0', []),
      drain(3, 't/1', [[0, 'a']]),
    ));
    expect(foundKinds(report)).toEqual(['lost', 'unexpected', 'offset-mismatch']);
  });

  it('refuses a topic send without a key, an ok outside its topic, and a fail naming another key', () => {
    const parse = (events: unknown[]) => checkHistory(events.map((raw, i) => parseHistoryEvent(raw, { source: 'test', line: i + 1 })));
    expect(() => parse([{ type: 'invoke', process: 0, f: 'send', value: { topic: 't', body: 'a' }, time: 0 }])).toThrow(/names the key/);
    expect(() => parse([
      { type: 'invoke', process: 0, f: 'send', value: { topic: 't', key: 'k', body: 'a' }, time: 0 },
      { type: 'ok', process: 0, f: 'send', value: { queue: 'u/0', body: 'a', offset: 0 }, time: 1 },
    ])).toThrow(/not one of topic "t"/);
    expect(() => parse([
      { type: 'invoke', process: 0, f: 'send', value: { topic: 't', key: 'k', body: 'a' }, time: 0 },
      { type: 'fail', process: 0, f: 'send', value: { topic: 't', key: 'j', body: 'a' }, time: 1 },
    ])).toThrow(/key "j"/);
  });
});
