// The checker and tag-filtered polls: skipping the messages of other tags is no poll-skip,
// skipping a matching one is, and returning one the filter excludes is filter-mismatch.
import { describe, expect, it } from 'vitest';
import { checkHistory } from '../src/checker/index.js';
import { drain, foundKinds, history, type Step } from './checker-helpers.js';

const Q = 'orders/0';

function taggedSend(process: number, body: string, tag: string | undefined, offset: number): Step[] {
  const value = tag === undefined ? { queue: Q, body } : { queue: Q, body, tag };
  return [
    { type: 'invoke', process, f: 'send', value },
    { type: 'ok', process, f: 'send', value: { queue: Q, body, offset } },
  ];
}

function filteredPoll(process: number, messages: [number, string][], from?: number): Step[] {
  const value = from === undefined ? { queue: Q, filterTags: ['a'] } : { queue: Q, from, filterTags: ['a'] };
  return [
    { type: 'invoke', process, f: 'poll', value },
    { type: 'ok', process, f: 'poll', value: { queue: Q, messages: messages.map(([offset, body]) => ({ offset, body })) } },
  ];
}

/** a0 b1 a2 b3 untagged4 a5: the filtered consumer reads a0, a2 and a5 in two polls. */
function validFilteredHistory(): Step[][] {
  return [
    taggedSend(0, 'a0', 'a', 0),
    taggedSend(0, 'b1', 'b', 1),
    taggedSend(0, 'a2', 'a', 2),
    taggedSend(0, 'b3', 'b', 3),
    taggedSend(0, 'u4', undefined, 4),
    taggedSend(0, 'a5', 'a', 5),
    filteredPoll(1, [[0, 'a0'], [2, 'a2']], 0),
    filteredPoll(1, [[5, 'a5']]),
    drain(2, Q, [[0, 'a0'], [1, 'b1'], [2, 'a2'], [3, 'b3'], [4, 'u4'], [5, 'a5']]),
  ];
}

describe('checker – tag-filtered polls', () => {
  it('skipping the messages of other tags (and untagged ones) is valid', () => {
    const report = checkHistory(history(...validFilteredHistory()));
    expect(foundKinds(report)).toEqual([]);
    expect(report.verdict).toBe('valid');
  });

  it('poll-skip: a filtered poll jumps over a matching message', () => {
    const steps = validFilteredHistory();
    steps.splice(6, 2, filteredPoll(1, [[0, 'a0']], 0), filteredPoll(1, [[5, 'a5']])); // a2 never returned
    const report = checkHistory(history(...steps));
    expect(foundKinds(report)).toEqual(['poll-skip']);
    expect(report.anomalies['poll-skip'][0]).toMatchObject({ skippedOffsets: [2] });
  });

  it('filter-mismatch: a filtered poll returns a message of another tag, or an untagged one', () => {
    const steps = validFilteredHistory();
    steps.splice(7, 1, filteredPoll(1, [[3, 'b3'], [4, 'u4'], [5, 'a5']]));
    const report = checkHistory(history(...steps));
    expect(foundKinds(report)).toEqual(['filter-mismatch']);
    expect(report.counts['filter-mismatch']).toBe(2);
    expect(report.anomalies['filter-mismatch'][0]).toMatchObject({ body: 'b3', tag: 'b' });
  });

  it('refuses filterTags that are not a non-empty list of tags', () => {
    const bad: Step = { type: 'invoke', process: 1, f: 'poll', value: { queue: Q, filterTags: [] } };
    expect(() => checkHistory(history(bad))).toThrow(/value.filterTags, when present, must be a non-empty array of tags/);
  });
});
