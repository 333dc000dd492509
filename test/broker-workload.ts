// Random broker command sequences for the property tests (model, snapshot oracle): topics that
// exist or not, in-order sends, retries of old sends, seq gaps, offset commits and resets, noops
// and retention (truncateLog) at random points. opWithDelays adds delayed messages, deliverDue
// proposals (naming timers that may be pending, delivered already or never parked), sendBack
// (retry and dead-letter copies, repeats) and dlqResend, for the snapshot oracle.
import fc from 'fast-check';
import type { BrokerCommand, DueMessage, ProduceCommand, ProduceMessage } from '../src/broker/commands.js';

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
const produceOp = fc.record({
  t: fc.constant('produce' as const),
  // Mostly two producers (both fit in maxProducers, so their windows fill), sometimes two
  // more that force evictions.
  producer: fc.oneof({ weight: 8, arbitrary: fc.nat(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) }),
  mode: fc.constantFrom('next', 'next', 'next', 'retry', 'retry', 'gap', 'one'),
  pick: fc.nat(),
  timestampMs: fc.nat(100),
  messages: fc.array(messageOp, { minLength: 1, maxLength: 3 }),
});
export const op = fc.oneof(
  { weight: 1, arbitrary: fc.record({ t: fc.constant('create' as const), topic: fc.nat(2), queues: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 6, arbitrary: produceOp },
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

// Bursts of sends to one queue, so queues outgrow one consume queue record (64 units, store.ts)
// and retention cuts them inside a record.
const burstMessageOp = fc.record({ topic: fc.constant(0), queueId: fc.constant(0), key: fc.option(fc.nat(2)), size: fc.nat(3) });
const burstOp = fc.record({
  t: fc.constant('produce' as const),
  producer: fc.nat(1),
  mode: fc.constant('next' as const),
  pick: fc.constant(0),
  timestampMs: fc.nat(100),
  messages: fc.array(burstMessageOp, { minLength: 10, maxLength: 40 }),
});
export const opWithBursts = fc.oneof({ weight: 3, arbitrary: op }, { weight: 2, arbitrary: burstOp });

const delayOp = fc.oneof(
  // A produce of one message due `delayMs` after its send (its timer parks it).
  { weight: 4, arbitrary: fc.record({ t: fc.constant('delayed' as const), producer: fc.nat(1), topic: fc.nat(1), timestampMs: fc.nat(100), delayMs: fc.integer({ min: 1, max: 60 }) }) },
  // The scheduler at `at`: every timer parked so far that is due by then, delivered or not.
  { weight: 3, arbitrary: fc.record({ t: fc.constant('deliver' as const), at: fc.nat(200) }) },
  // A failed delivery of t0/queue offset: a retry copy due later, or a dead letter.
  { weight: 3, arbitrary: fc.record({ t: fc.constant('sendBack' as const), queueId: fc.nat(1), offset: fc.nat(4), dlq: fc.boolean(), timestampMs: fc.nat(150), delayMs: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('resend' as const), dlqOffset: fc.nat(3), timestampMs: fc.nat(150) }) },
);
export const opWithDelays = fc.oneof({ weight: 3, arbitrary: op }, { weight: 2, arbitrary: delayOp });
export type DelayOp = typeof opWithDelays extends fc.Arbitrary<infer T> ? T : never;

// produceBatch entries, as a leader batches the produces it receives while a round is out: 2 to
// 5 produces of op's kinds (in order, retries, gaps; the same producer more than once), and
// with delays also produces of delayed messages.
const delayedProduceOp = fc.record({ t: fc.constant('delayed' as const), producer: fc.nat(1), topic: fc.nat(1), timestampMs: fc.nat(100), delayMs: fc.integer({ min: 1, max: 60 }) });
const batchOp = fc.record({ t: fc.constant('batch' as const), produces: fc.array(produceOp, { minLength: 2, maxLength: 5 }) });
const batchWithDelaysOp = fc.record({ t: fc.constant('batch' as const), produces: fc.array(fc.oneof(produceOp, delayedProduceOp), { minLength: 2, maxLength: 5 }) });
// Batches as an unbatched producer's sends make them: one-message produces of one or two
// producers, mostly each the next seq (so their msgIds count up: msgseq records), now and then a
// retry or a gap that breaks the count.
const singleSendOp = fc.record({
  t: fc.constant('produce' as const),
  producer: fc.nat(1),
  mode: fc.oneof({ weight: 10, arbitrary: fc.constant('next' as const) }, { weight: 1, arbitrary: fc.constantFrom('retry' as const, 'gap' as const, 'one' as const) }),
  pick: fc.nat(),
  timestampMs: fc.nat(100),
  messages: fc.array(messageOp, { minLength: 1, maxLength: 1 }),
});
const singleSendsBatchOp = fc.record({ t: fc.constant('batch' as const), produces: fc.array(singleSendOp, { minLength: 2, maxLength: 6 }) });
export const opWithBatches = fc.oneof({ weight: 3, arbitrary: op }, { weight: 2, arbitrary: batchOp }, { weight: 1, arbitrary: singleSendsBatchOp });
export const opWithBatchesAndDelays = fc.oneof({ weight: 3, arbitrary: op }, { weight: 2, arbitrary: delayOp }, { weight: 2, arbitrary: batchWithDelaysOp });
type BatchOp = typeof batchWithDelaysOp extends fc.Arbitrary<infer T> ? T : never;
type ProduceOp = Extract<Op, { t: 'produce' }>;

// Transactions: half sends to a few transaction slots (some repeated, some to queues that do not
// exist), ends that commit what the slot sent (or roll back; stale when a half was refused or
// a repeat of an end), and check counts. A slot begins a new transaction after an end.
const txOp = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('txHalf' as const), slot: fc.nat(2), repeat: fc.boolean(), timestampMs: fc.nat(100), messages: fc.array(messageOp, { minLength: 1, maxLength: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('txEnd' as const), slot: fc.nat(2), commit: fc.boolean(), again: fc.boolean(), timestampMs: fc.nat(150) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('txChecked' as const), slot: fc.nat(2), checks: fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) }), at: fc.nat(200) }) },
);
export const opWithTransactions = fc.oneof({ weight: 3, arbitrary: op }, { weight: 2, arbitrary: txOp });
type TxOp = Extract<typeof txOp extends fc.Arbitrary<infer T> ? T : never, { t: string }>;

/** Per slot: its transaction's id and what was sent in it (the last half send, for repeats). */
interface TxSlot {
  generation: number;
  sent: ProduceMessage[];
  last: BrokerCommand | null;
  ended: BrokerCommand | null;
}

function txCommand(o: TxOp, logIndex: number, slots: TxSlot[]): BrokerCommand | null {
  const slot = (slots[o.slot] ??= { generation: 0, sent: [], last: null, ended: null });
  const txId = `x${o.slot}.${slot.generation}`;
  switch (o.t) {
    case 'txHalf': {
      if (o.repeat && slot.last !== null) return slot.last;
      const messages = o.messages.map((m, j): ProduceMessage => ({ msgId: `${txId}-${logIndex}-${j}`, topic: TOPICS[m.topic]!, queueId: m.queueId, body: Uint8Array.of(logIndex % 256, j), ...(m.key === null ? {} : { keys: [KEYS[m.key]!] }) }));
      slot.sent.push(...messages);
      slot.last = { kind: 'txHalf', timestampMs: o.timestampMs, producerGroup: 'pg', producerId: 'tp', txId, checkAtMs: o.timestampMs + 50, messages };
      return slot.last;
    }
    case 'txEnd': {
      if (o.again && slot.ended !== null) return slot.ended;
      const messages = o.commit ? [...slot.sent] : [];
      if (o.commit && messages.length === 0) return null;
      const end: BrokerCommand = { kind: 'txEnd', timestampMs: o.timestampMs, txId, outcome: o.commit ? 'commit' : 'rollback', source: 'producer', messages };
      Object.assign(slot, { generation: slot.generation + 1, sent: [], last: null, ended: end });
      return end;
    }
    case 'txChecked':
      return { kind: 'txChecked', timestampMs: o.at, checks: [{ txId, checks: o.checks, nextCheckAtMs: o.at + 60 }] };
  }
}

/** Timers the log's entries may have parked, as toCommands tracks them. */
type Parked = DueMessage[];

/** The commands of delayOp kinds; op kinds go through toCommands' own rules. */
function delayCommand(o: Exclude<DelayOp, Op>, logIndex: number, parked: Parked, nextSeq: (producerId: string) => number): BrokerCommand | null {
  const body = Uint8Array.of(logIndex % 256, 7);
  const origin = { msgId: `o${logIndex}`, topic: 't0', queueId: 0, offset: 0 };
  switch (o.t) {
    case 'delayed':
      return delayedProduce(o, `d${logIndex}`, { logIndex, position: 0 }, parked, nextSeq);
    case 'deliver': {
      const messages = parked.filter((due) => due.timer.deliverAtMs <= o.at);
      return messages.length === 0 ? null : { kind: 'deliverDue', timestampMs: o.at, messages };
    }
    case 'sendBack': {
      const from = { topic: 't0', queueId: o.queueId, offset: o.offset };
      const copy = { msgId: `s${logIndex}`, queueId: 0, body, origin: { ...origin, queueId: o.queueId, offset: o.offset }, firstFailureMs: o.timestampMs };
      if (o.dlq) {
        const deadLetter = { reason: 'failed', attempts: 2, firstFailureMs: o.timestampMs, lastFailureMs: o.timestampMs };
        return { kind: 'sendBack', timestampMs: o.timestampMs, group: GROUPS[0]!, from, target: 'dlq', message: { ...copy, topic: `%DLQ%${GROUPS[0]}`, deadLetter } };
      }
      const message: ProduceMessage = { ...copy, topic: `%RETRY%${GROUPS[0]}`, deliverAtMs: o.timestampMs + o.delayMs, reconsumeTimes: 1 };
      parked.push({ timer: { deliverAtMs: message.deliverAtMs!, logIndex, position: 0 }, message });
      return { kind: 'sendBack', timestampMs: o.timestampMs, group: GROUPS[0]!, from, target: 'retry', message };
    }
    case 'resend':
      return { kind: 'dlqResend', timestampMs: o.timestampMs, group: GROUPS[0]!, entries: [{ dlqOffset: o.dlqOffset, message: { msgId: `r${logIndex}`, topic: `%RETRY%${GROUPS[0]}`, queueId: 0, body, origin } }] };
  }
}

/** A produce of one message due delayMs after its send, parked at `at` (its entry, its position there). */
function delayedProduce(o: Extract<DelayOp, { t: 'delayed' }>, msgId: string, at: { logIndex: number; position: number }, parked: Parked, nextSeq: (producerId: string) => number): ProduceCommand {
  const producerId = PRODUCERS[o.producer]!;
  const message: ProduceMessage = { msgId, topic: TOPICS[o.topic]!, queueId: 0, body: Uint8Array.of(at.logIndex % 256, 7), deliverAtMs: o.timestampMs + o.delayMs };
  parked.push({ timer: { deliverAtMs: message.deliverAtMs!, ...at }, message });
  return { kind: 'produce', producerId, seq: nextSeq(producerId), timestampMs: o.timestampMs, messages: [message] };
}

/** Turns ops into commands like clients would send them: in-order seqs, retries of old sends, gaps. */
export function toCommands(ops: readonly (Op | DelayOp | TxOp | BatchOp)[]): (BrokerCommand | null)[] {
  const slots: TxSlot[] = [];
  const sentMax = new Map<string, number>();
  const sent = new Map<string, ProduceCommand>();
  const parked: Parked = [];
  const start: BrokerCommand[] = [
    { kind: 'createTopic', topic: 't0', queues: 2 },
    { kind: 'createTopic', topic: 't1', queues: 3 },
  ];
  const nextSeq = (producerId: string): number => {
    const seq = (sentMax.get(producerId) ?? 0) + 1;
    sentMax.set(producerId, seq);
    return seq;
  };
  return [...start, ...ops.map((o, i): BrokerCommand | null => {
    if (o.t === 'delayed' || o.t === 'deliver' || o.t === 'sendBack' || o.t === 'resend') return delayCommand(o, start.length + i + 1, parked, nextSeq);
    if (o.t === 'txHalf' || o.t === 'txEnd' || o.t === 'txChecked') return txCommand(o, start.length + i + 1, slots);
    if (o.t === 'noop') return null;
    if (o.t === 'truncate') return { kind: 'truncateLog', firstIndex: Math.max(1, start.length + i + 1 - o.back) };
    if (o.t === 'create') return { kind: 'createTopic', topic: TOPICS[o.topic]!, queues: o.queues };
    if (o.t === 'offsets') {
      return { kind: o.reset ? 'resetOffsets' : 'commitOffsets', group: GROUPS[o.group]!, offsets: [{ topic: TOPICS[o.topic]!, queueId: o.queueId, offset: o.offset }] };
    }
    if (o.t === 'batch') {
      const logIndex = start.length + i + 1;
      let position = 0;
      const produces = o.produces.map((p, k) => {
        // Every other produce names its messages with the first's run prefix: an entry whose
        // produces share one is indexed without runs (placement.ts). Every third batch names
        // them as the native producer names single sends, by producer and seq (msgseq records).
        const naming = i % 3 === 0 ? 'seq' : (i + k) % 2 === 0 ? 'run' : 'plain';
        const produce = p.t === 'delayed' ? delayedProduce(p, `d${logIndex}_${k}`, { logIndex, position }, parked, nextSeq) : produceOf(p, `${i}_${k % 2 === 0 ? 0 : k}`, naming, i + k);
        position += produce.messages.length;
        return produce;
      });
      return { kind: 'produceBatch', produces };
    }
    return produceOf(o, String(i), i % 2 === 0 ? 'run' : 'plain', i);
  })];

  function produceOf(o: ProduceOp, name: string, naming: 'run' | 'plain' | 'seq', bodySeed: number): ProduceCommand {
    const producerId = PRODUCERS[o.producer]!;
    const max = sentMax.get(producerId) ?? 0;
    const seq = o.mode === 'next' ? max + 1 : o.mode === 'gap' ? max + 2 : o.mode === 'one' ? 1 : 1 + (o.pick % Math.max(1, max));
    const previous = sent.get(`${producerId}#${seq}`);
    if (o.mode === 'retry' && previous !== undefined) return previous;
    if (o.mode === 'next') sentMax.set(producerId, seq);
    const messages = o.messages.map((m, j): ProduceMessage => {
      // Half the produces name their messages as the native producer names a batch
      // (prefix.position: one msgrun record for the produce, store.ts), half not (one msgid
      // record each); 'seq' names them <producer>-<seq + position>: a produceBatch entry's
      // one-message produces counting up share a msgseq record, the others' names stop that.
      const msgId = naming === 'run' ? `m${name}.${j}` : naming === 'seq' ? `q${producerId}-${seq + j}` : `m${name}-${j}`;
      const message: ProduceMessage = { msgId, topic: TOPICS[m.topic]!, queueId: m.queueId, body: Uint8Array.from({ length: m.size }, (_, b) => (bodySeed + b) % 256) };
      if (m.key !== null) message.keys = [KEYS[m.key]!];
      return message;
    });
    const command: ProduceCommand = { kind: 'produce', producerId, seq, timestampMs: o.timestampMs, messages };
    sent.set(`${producerId}#${seq}`, command);
    return command;
  }
}
