// `key-reorder`: the order of one key's messages across queues. A producer that picks the queue
// by key keeps a key in one queue, where `reorder` judges it — until the topic grows and the
// key moves to another queue. From then on the broker's promise (README, "Growing a topic")
// is that the key's new messages are not stored before every group has consumed the ones in
// its old queue, so consumers never see a key's later message before its earlier one.
import { assert } from '../util/assert.js';
import { ackedQueue } from './anomalies.js';
import { type AnomalyResult, describeOp, Findings, quote } from './findings.js';
import type { HistoryIndex, SendRecord } from './indexes.js';
import type { OpRef } from './pairing.js';

/** The earliest read that showed a body anywhere: its queue and its completion. */
interface FirstRead {
  queue: string;
  read: OpRef;
}

function firstRead(index: HistoryIndex, body: string): FirstRead | undefined {
  let first: FirstRead | undefined;
  for (const location of index.bodyLocations.get(body) ?? []) {
    if (first === undefined || location.read.line < first.read.line) first = { queue: location.queue, read: location.read };
  }
  return first;
}

function topicOf(send: SendRecord): string {
  if (send.topic !== undefined) return send.topic;
  assert(send.queue !== undefined, 'a send names a queue or a topic');
  const slash = send.queue.lastIndexOf('/');
  return slash === -1 ? send.queue : send.queue.slice(0, slash);
}

const notDelayed = (send: SendRecord): boolean => send.delay === undefined || send.delay.delayMs === 0;

/** The earlier send of a pair, with when a read first showed it (Infinity: never). */
interface Earlier {
  send: SendRecord;
  firstReadLine: number;
}

/**
 * `key-reorder`: sends A and B of one key (value.key) and topic, A completed `ok` before B was
 * invoked, stored in different queues, yet a poll returned B before any read returned A — the
 * earliest read showing B is a poll that completed before the earliest read showing A (or no
 * read shows A). B may be ok, info or fail (if it landed). Delayed sends are left out (they
 * are placed when due). Counted once per B, paired with the A first read latest. Polls name no
 * group, so every poll of the history counts as one group's: with several groups, a broker that
 * waited for only some of them could go unseen (the grow workload has one).
 */
export function findKeyReorders(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  const byKey = new Map<string, SendRecord[]>();
  for (const send of index.sends.values()) {
    if (send.key === undefined || !notDelayed(send)) continue;
    const scope = `${topicOf(send)}\u0000${send.key}`;
    let sends = byKey.get(scope);
    if (sends === undefined) byKey.set(scope, (sends = []));
    sends.push(send);
  }
  for (const sends of byKey.values()) judgeKey(index, sends, findings);
  return findings.result();
}

function judgeKey(index: HistoryIndex, sends: SendRecord[], findings: Findings): void {
  const acked = sends.filter((s) => s.outcome === 'ok').sort((a, b) => completionLine(a) - completionLine(b));
  const polled = sends
    .map((send) => ({ send, first: firstRead(index, send.body) }))
    .filter((p): p is { send: SendRecord; first: FirstRead } => p.first !== undefined && p.first.read.f === 'poll')
    .sort((a, b) => a.send.invoke.line - b.send.invoke.line);
  /** Per queue, of the acked sends completed so far, the one first read latest. */
  const latestRead = new Map<string, Earlier>();
  let next = 0;
  for (const later of polled) {
    for (; next < acked.length && completionLine(acked[next]!) < later.send.invoke.line; next++) {
      const earlier = acked[next]!;
      const queue = ackedQueue(earlier);
      const firstReadLine = firstRead(index, earlier.body)?.read.line ?? Number.POSITIVE_INFINITY;
      const known = latestRead.get(queue);
      if (known === undefined || firstReadLine > known.firstReadLine) latestRead.set(queue, { send: earlier, firstReadLine });
    }
    let worst: Earlier | undefined;
    for (const [queue, earlier] of latestRead) {
      if (queue === later.first.queue || earlier.firstReadLine <= later.first.read.line) continue;
      if (worst === undefined || earlier.firstReadLine > worst.firstReadLine) worst = earlier;
    }
    if (worst === undefined) continue;
    const a = worst;
    findings.add(() => ({
      description:
        `key ${quote(later.send.key!)}: ${quote(a.send.body)} (${describeOp(a.send.completion!)}, stored in ${ackedQueue(a.send)}) completed before ${quote(later.send.body)} was invoked (${describeOp(later.send.invoke)}), ` +
        `yet ${describeOp(later.first.read)} returned ${quote(later.send.body)} from ${later.first.queue} ${Number.isFinite(a.firstReadLine) ? `before any read returned ${quote(a.send.body)} (first at line ${a.firstReadLine})` : `and no read ever returned ${quote(a.send.body)}`}`,
      key: later.send.key!,
      earlier: { body: a.send.body, queue: ackedQueue(a.send), send: a.send.completion!, firstReadLine: Number.isFinite(a.firstReadLine) ? a.firstReadLine : null },
      later: { body: later.send.body, queue: later.first.queue, send: later.send.invoke, read: later.first.read },
    }));
  }
}

function completionLine(send: SendRecord): number {
  assert(send.completion !== undefined, 'a completed send has its completion');
  return send.completion.line;
}
