// Random broker command sequences for the property tests (model, snapshot oracle): topics that
// exist or not, in-order sends, retries of old sends, seq gaps, offset commits and resets, noops
// and retention (truncateLog) at random points.
import fc from 'fast-check';
import type { BrokerCommand, ProduceMessage } from '../src/broker/commands.js';

export const TOPICS = ['t0', 't1', 't2', 't3']; // t3 is never created
export const PRODUCERS = ['p0', 'p1', 'p2', 'p3'];
export const GROUPS = ['g0', 'g1'];
export const KEYS = ['k0', 'k1', 'k2'];
export const MAX_PRODUCERS = 2;
export const DEDUP_WINDOW = 3;

// Mostly valid queues of the two topics every sequence starts with; sometimes t2 (created only
// by chance), t3 (never created) or a queue beyond the topic's count.
const topicIndex = fc.oneof({ weight: 12, arbitrary: fc.nat(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) });
const queueIndex = fc.oneof({ weight: 15, arbitrary: fc.nat(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) });
const messageOp = fc.record({ topic: topicIndex, queueId: queueIndex, key: fc.option(fc.nat(2)), size: fc.nat(6) });
export const op = fc.oneof(
  { weight: 1, arbitrary: fc.record({ t: fc.constant('create' as const), topic: fc.nat(2), queues: fc.integer({ min: 1, max: 3 }) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('produce' as const),
      // Mostly two producers (both fit in maxProducers, so their windows fill), sometimes two
      // more that force evictions.
      producer: fc.oneof({ weight: 8, arbitrary: fc.nat(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) }),
      mode: fc.constantFrom('next', 'next', 'next', 'retry', 'retry', 'gap', 'one'),
      pick: fc.nat(),
      timestampMs: fc.nat(100),
      messages: fc.array(messageOp, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('offsets' as const),
      reset: fc.oneof({ weight: 1, arbitrary: fc.constant(true) }, { weight: 3, arbitrary: fc.constant(false) }),
      group: fc.nat(1),
      topic: topicIndex,
      // Mostly queue 0 and small offsets, so commits meet earlier commits of the same queue.
      queueId: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: queueIndex }),
      offset: fc.nat(6),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'noop' as const }) },
  // Retention: keep the log from `back` entries before this one; back -1 asks past itself (refused).
  { weight: 1, arbitrary: fc.record({ t: fc.constant('truncate' as const), back: fc.integer({ min: -1, max: 20 }) }) },
);
export type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** Turns ops into commands like clients would send them: in-order seqs, retries of old sends, gaps. */
export function toCommands(ops: Op[]): (BrokerCommand | null)[] {
  const sentMax = new Map<string, number>();
  const sent = new Map<string, BrokerCommand>();
  const start: BrokerCommand[] = [
    { kind: 'createTopic', topic: 't0', queues: 2 },
    { kind: 'createTopic', topic: 't1', queues: 3 },
  ];
  return [...start, ...ops.map((o, i): BrokerCommand | null => {
    if (o.t === 'noop') return null;
    if (o.t === 'truncate') return { kind: 'truncateLog', firstIndex: Math.max(1, start.length + i + 1 - o.back) };
    if (o.t === 'create') return { kind: 'createTopic', topic: TOPICS[o.topic]!, queues: o.queues };
    if (o.t === 'offsets') {
      return { kind: o.reset ? 'resetOffsets' : 'commitOffsets', group: GROUPS[o.group]!, offsets: [{ topic: TOPICS[o.topic]!, queueId: o.queueId, offset: o.offset }] };
    }
    const producerId = PRODUCERS[o.producer]!;
    const max = sentMax.get(producerId) ?? 0;
    const seq = o.mode === 'next' ? max + 1 : o.mode === 'gap' ? max + 2 : o.mode === 'one' ? 1 : 1 + (o.pick % Math.max(1, max));
    const previous = sent.get(`${producerId}#${seq}`);
    if (o.mode === 'retry' && previous !== undefined) return previous;
    if (o.mode === 'next') sentMax.set(producerId, seq);
    const messages = o.messages.map((m, j): ProduceMessage => {
      const message: ProduceMessage = { msgId: `m${i}-${j}`, topic: TOPICS[m.topic]!, queueId: m.queueId, body: Uint8Array.from({ length: m.size }, (_, b) => (i + b) % 256) };
      if (m.key !== null) message.keys = [KEYS[m.key]!];
      return message;
    });
    const command: BrokerCommand = { kind: 'produce', producerId, seq, timestampMs: o.timestampMs, messages };
    sent.set(`${producerId}#${seq}`, command);
    return command;
  })];
}

