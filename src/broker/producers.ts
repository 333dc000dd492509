// Idempotent producers (like Kafka's): per producerId the broker keeps the last applied seq and
// the outcomes of the most recent seqs, all in lmdb and derived from the log, so dedup and the
// gap check survive failover. This module owns those rules; placing messages is the state
// machine's job.
//
// Rules, checked at apply time against the replicated state:
// - seq == lastSeq + 1: applied (placed, or refused with a deterministic error — either way
//   the seq is used up and its outcome is kept, so a retry gets the same answer).
// - seq <= lastSeq: a duplicate. Nothing is appended; the original outcome is returned while
//   it is in the window (dedupWindowPerProducer seqs), else `placed: []` with duplicate: true
//   (the message was stored once, but where is no longer remembered).
// - seq > lastSeq + 1: a gap (an earlier send was lost or is still being retried). Refused with
//   LMQ_OUT_OF_ORDER and expectedSeq; nothing changes, so per-queue order survives retries.
// - A producerId the broker does not track (new, or evicted) must start at seq 1: anything else
//   is refused with expectedSeq 1. A client that was evicted therefore sees "expected 1" while
//   it is at seq > 1, and must start a new producer session (new producerId, seq 1), resending
//   what is unacknowledged — possibly a duplicate, which consumers detect by msgId. Accepting
//   any first seq instead would let seq 2 overtake a lost seq 1 and then drop 1 as a duplicate.
// - At most maxProducers are tracked; adding one more evicts the least recently used (smallest
//   log index of its last applied or duplicate produce). Deterministic: same log, same choice.
import { assert } from '../util/assert.js';
import type { BrokerStore, ProduceOutcome, ProducerRecord } from './store.js';

export interface ProducerSettings {
  maxProducers: number;
  dedupWindowPerProducer: number;
}

export type SeqCheck =
  | { verdict: 'apply'; producer: ProducerRecord | undefined }
  | { verdict: 'duplicate'; original: ProduceOutcome | undefined }
  | { verdict: 'outOfOrder'; expectedSeq: number; message: string };

const PRODUCER_COUNT_META = 'producerCount';

/** Classifies a produce's seq; marks a known producer as used when it is a duplicate. */
export function checkSeq(store: BrokerStore, producerId: string, seq: number, logIndex: number): SeqCheck {
  assert(Number.isSafeInteger(seq) && seq >= 1, 'seq must be a positive integer');
  const producer = store.getProducer(producerId);
  const lastSeq = producer?.lastSeq ?? 0;
  if (seq === lastSeq + 1) return { verdict: 'apply', producer };
  if (seq > lastSeq + 1) {
    const expectedSeq = lastSeq + 1;
    const known = producer === undefined ? ' (the broker does not know this producer: a new producer starts at seq 1; one that was evicted must start a new session)' : '';
    const message = `producer "${producerId}" sent seq ${seq} but the broker expects seq ${expectedSeq}${known}; an earlier send is missing — resend in order from seq ${expectedSeq}`;
    return { verdict: 'outOfOrder', expectedSeq, message };
  }
  assert(producer !== undefined, 'a duplicate needs a known producer');
  touch(store, producerId, producer, logIndex);
  store.putProducer(producerId, { ...producer, lastUsedLogIndex: logIndex });
  return { verdict: 'duplicate', original: producer.window.find((outcome) => outcome.seq === seq) };
}

/**
 * Records the outcome of an applied seq; `producer` is the record checkSeq returned with its
 * 'apply' verdict. Returns the producerId evicted to make room, if any.
 */
export function recordOutcome(
  store: BrokerStore,
  settings: ProducerSettings,
  producerId: string,
  producer: ProducerRecord | undefined,
  outcome: ProduceOutcome,
  logIndex: number,
): string | undefined {
  assert(outcome.seq === (producer?.lastSeq ?? 0) + 1, 'recorded seq must follow lastSeq');
  const window = [...(producer?.window ?? []), outcome].slice(-settings.dedupWindowPerProducer);
  touch(store, producerId, producer, logIndex);
  store.putProducer(producerId, { lastSeq: outcome.seq, lastUsedLogIndex: logIndex, window });
  if (producer !== undefined) return undefined;
  const count = (store.getMeta(PRODUCER_COUNT_META) ?? 0) + 1;
  if (count <= settings.maxProducers) {
    store.putMeta(PRODUCER_COUNT_META, count);
    return undefined;
  }
  const evicted = store.leastRecentProducer();
  assert(evicted !== undefined, 'over maxProducers with no producer to evict');
  assert(evicted.producerId !== producerId, 'the producer just used cannot be the least recent');
  store.removeProducerRecency(evicted.lastUsedLogIndex, evicted.producerId);
  store.removeProducer(evicted.producerId);
  store.putMeta(PRODUCER_COUNT_META, count - 1);
  return evicted.producerId;
}

/**
 * Moves the producer to the most-recent end of the eviction order: after every producer used
 * before, in this entry too (a produceBatch entry may use several, or one more than once).
 */
function touch(store: BrokerStore, producerId: string, producer: ProducerRecord | undefined, logIndex: number): void {
  if (producer !== undefined) {
    assert(producer.lastUsedLogIndex <= logIndex, 'a producer is not used before its last use');
    // Its seqs one after another in one batch: it stays where it is, the most recent.
    if (producer.lastUsedLogIndex === logIndex && store.lastProducerUsingApplyingEntry(logIndex) === producerId) return;
    store.removeProducerRecency(producer.lastUsedLogIndex, producerId);
  }
  store.putProducerRecency(logIndex, producerId);
}
