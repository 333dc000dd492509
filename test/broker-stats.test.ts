// The broker's console counters (src/broker/stats.ts) and a group row's lag in seconds.
import { describe, expect, it } from 'vitest';
import { withLagSeconds } from '../src/broker/service.js';
import { BrokerStats, p99 } from '../src/broker/stats.js';

describe('broker stats – produce seconds and counters', () => {
  it('closes each second with its messages and p99, fills quiet seconds with zeros, and keeps five minutes', () => {
    let nowMs = 10_000;
    const stats = new BrokerStats('n1', () => nowMs);
    const seen: [readonly string[], number][] = [];
    stats.onProduced((topics, costMs) => seen.push([topics, costMs]));
    stats.produced([{ topic: 'a', body: new Uint8Array(3) }, { topic: 'b', body: new Uint8Array(4) }, { topic: 'a', body: new Uint8Array(5) }], 2);
    stats.produced([{ topic: 'a', body: new Uint8Array(1) }], 8);
    expect(stats.reply().seconds).toEqual([]); // the second is still running
    nowMs = 12_500;
    stats.delivered('a', 2);
    stats.delivered('a', 0);
    const reply = stats.reply();
    expect(reply.seconds).toEqual([{ atMs: 10_000, messages: 4, p99Ms: 8 }, { atMs: 11_000, messages: 0, p99Ms: null }]);
    expect(reply.bytesIn).toEqual({ a: 9, b: 4 });
    expect(reply.messagesOut).toEqual({ a: 2 });
    expect(seen).toEqual([[['a', 'b'], 2], [['a'], 8]]);
    nowMs += 400_000;
    expect(stats.reply().seconds).toHaveLength(300);
  });

  it('p99 is the nearest rank', () => {
    expect(p99([])).toBeNull();
    expect(p99([5])).toBe(5);
    expect(p99(Array.from({ length: 100 }, (_, i) => 100 - i))).toBe(99);
  });
});

describe('group lag – seconds', () => {
  const row = { topic: 't', queueId: 0, committedOffset: 3, nextOffset: 5, lag: 2 };
  it('is the age of the oldest unconsumed message, 0 without lag, and unknown (with why) when the store time is ahead', () => {
    expect(withLagSeconds(row, 1_000, 3_500)).toEqual({ ...row, lagSeconds: 2.5 });
    expect(withLagSeconds({ ...row, lag: 0, committedOffset: 5 }, null, 3_500)).toEqual({ ...row, lag: 0, committedOffset: 5, lagSeconds: 0 });
    const ahead = withLagSeconds(row, 4_000, 3_500);
    expect(ahead.lagSeconds).toBeNull();
    expect(ahead.lagSecondsUnknown).toBe("the oldest unconsumed message's store time is 500 ms ahead of the leader's clock");
  });
});
