import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkHistory, queueAnomalyKinds } from '../src/checker/index.js';
import { foundKinds } from './checker-helpers.js';
import { chooserFrom, impliedKinds, modelHistory, plantAnomaly, type ModelShape } from './checker-model.js';

const shapeArb = fc.record({
  queues: fc.integer({ min: 1, max: 3 }),
  producers: fc.integer({ min: 1, max: 4 }),
  consumers: fc.integer({ min: 1, max: 3 }),
  retention: fc.boolean(),
});
const choicesArb = fc.array(fc.nat({ max: 1_000_000 }), { minLength: 200, maxLength: 1600 });

function shapeOf(base: { queues: number; producers: number; consumers: number; retention: boolean }, choices: readonly number[]): ModelShape {
  // A step draws about four choices; past the end of them the model only repeats choice 0.
  return { ...base, stepsMax: Math.floor(choices.length / 4), sendsMax: Number.MAX_SAFE_INTEGER, pollBatchMax: 5 };
}

describe('checker – properties over a correct queue model', () => {
  it('a history of a correct queue is always valid', () => {
    fc.assert(
      fc.property(shapeArb, choicesArb, (base, choices) => {
        const events = modelHistory(shapeOf(base, choices), chooserFrom(choices));
        const report = checkHistory(events);
        expect(foundKinds(report)).toEqual([]);
        expect(report.verdict).toBe('valid');
      }),
      { numRuns: 300 },
    );
  });

  it('the model exercises overlap, info, fail, restarts, rebalances, mid-queue starts and retention', () => {
    // Guards the property above against a model too tame to matter.
    const seen = { info: 0, fail: 0, overlap: 0, from: 0, incomplete: 0, retainedAway: 0, retainedUnread: 0 };
    fc.assert(
      fc.property(shapeArb, choicesArb, (base, choices) => {
        const events = modelHistory(shapeOf(base, choices), chooserFrom(choices));
        const report = checkHistory(events);
        seen.info += report.stats.info;
        seen.fail += report.stats.failed;
        seen.incomplete += report.stats.incomplete;
        seen.retainedAway += report.retainedAwaySends.count;
        seen.retainedUnread += report.retainedAwaySends.count - report.retainedAwaySends.readBeforeRetention;
        seen.from += events.filter((e) => e.type === 'invoke' && e.f === 'poll' && e.value.from !== undefined).length;
        let inflight = 0;
        for (const e of events) {
          if (e.f !== 'send') continue;
          inflight += e.type === 'invoke' ? 1 : -1;
          if (inflight > 1) seen.overlap += 1;
        }
      }),
      { numRuns: 100, seed: 42 },
    );
    for (const count of Object.values(seen)) expect(count).toBeGreaterThan(0);
  });

  it.each(queueAnomalyKinds.map((kind) => [kind]))('a planted %s is found and classified as such', (kind: (typeof queueAnomalyKinds)[number]) => {
    fc.assert(
      fc.property(shapeArb, choicesArb, fc.nat(), (base, choices, pick) => {
        const valid = modelHistory(shapeOf(base, choices), chooserFrom(choices));
        const planted = plantAnomaly[kind](valid, pick);
        fc.pre(planted !== undefined);
        const report = checkHistory(planted);
        expect(report.counts[kind]).toBeGreaterThan(0);
        expect(report.verdict).toBe('invalid');
        for (const other of foundKinds(report)) expect([kind, ...impliedKinds[kind]]).toContain(other);
      }),
      { numRuns: 100 },
    );
  });
});
