// One function per anomaly of CONTRACT.md "History format", each a pure function of the
// shared HistoryIndex with its exact definition in its doc comment. Each returns how many
// times the anomaly occurred and the first few examples in history order, naming the
// operations (line, process, time) so a person can find them in the history.
//
// Offsets of "a read" below mean what an ok poll or ok drain returned. `info` operations
// may or may not have happened: an info send is never lost and never failed-present, and it
// may land anywhere after its invoke (even after its info) — only acked sends constrain order.
import { assert } from '../util/assert.js';
import type { BodyLocation, DrainRecord, HistoryIndex, ReadStep, SendRecord } from './indexes.js';
import type { OpRef } from './pairing.js';
import { type AnomalyExample, type AnomalyResult, describeOp, examplesPerAnomalyMax, Findings, quote } from './findings.js';

export type { AnomalyExample, AnomalyResult } from './findings.js';

/** Skipped offsets listed in one poll-skip example; `skippedCount` has the full number. */
export const skippedOffsetsListedMax = 10;

/** An acked send's queue: the one it named, or the one its ok named. */
export function ackedQueue(send: SendRecord): string {
  assert(send.queue !== undefined && send.outcome === 'ok', 'an acked send has its queue');
  return send.queue;
}

/**
 * Whether a body read at `queue` may be this send's: the queue it named or was acked at, or —
 * a keyed send of a topic whose outcome is unknown — any queue of its topic.
 */
export function sentTo(send: SendRecord, queue: string): boolean {
  return send.queue !== undefined ? send.queue === queue : queue.startsWith(`${send.topic}/`);
}

function finalDrain(index: HistoryIndex, queue: string): DrainRecord | undefined {
  const drains = index.drains.get(queue);
  return drains === undefined ? undefined : drains[drains.length - 1];
}

/**
 * Whether the final drain of the send's queue can judge it: the queue was drained (ok) and the
 * send completed before that drain was invoked (a send still running during the drain may
 * land after the drain read past its place).
 */
function drainCanJudge(index: HistoryIndex, send: SendRecord): DrainRecord | undefined {
  const drain = finalDrain(index, ackedQueue(send));
  if (drain === undefined || send.completion === undefined) return undefined;
  return send.completion.line < drain.invoke.line ? drain : undefined;
}

/** How the final drain of its queue judges one acked send (see findLost). */
type LossJudgement =
  | { kind: 'present' }
  | { kind: 'lost'; drain: DrainRecord }
  /** Stored below the final drain's minOffset: retention deleted it before the drain read. */
  | { kind: 'retained'; drain: DrainRecord }
  /** No final drain can judge it, or retention may have taken it and nothing says where it was. */
  | { kind: 'unjudged' };

/**
 * Judges an acked send against the final drain of its queue. A send is stored at the offset
 * its ack named, else where a read showed it in its queue; stored below the drain's minOffset
 * it was retained away, not lost — unless another ack named the same offset (one of the two
 * is lost, and retention may not hide which). An ack that named no offset (leader quorum), for a body no
 * read ever showed, cannot be placed: once retention moved the queue's start it is unjudged.
 */
function judgeLoss(index: HistoryIndex, send: SendRecord): LossJudgement {
  assert(send.outcome === 'ok', 'only acked sends are judged for loss');
  const drain = drainCanJudge(index, send);
  if (drain === undefined) return { kind: 'unjudged' };
  if (drain.bodies.has(send.body)) return { kind: 'present' };
  const offset = send.ackedOffset ?? lowestReadOffset(index, send);
  // Two acks naming one offset cannot both be right: neither is excused as retained.
  const claimedOnce = send.ackedOffset === undefined || index.ackedOffsetClaims.get(ackedQueue(send))?.get(send.ackedOffset) === 1;
  if (offset !== undefined && offset < drain.minOffset && claimedOnce) return { kind: 'retained', drain };
  if (offset === undefined && drain.minOffset > 0) return { kind: 'unjudged' };
  return { kind: 'lost', drain };
}

/** The lowest offset of the send's own queue where a read showed its body, if any. */
function lowestReadOffset(index: HistoryIndex, send: SendRecord): number | undefined {
  return lowestReadLocation(index, send)?.offset;
}

/** Where a read showed the send's body in (one of) its queue(s), at the lowest offset. */
function lowestReadLocation(index: HistoryIndex, send: SendRecord): BodyLocation | undefined {
  let lowest: BodyLocation | undefined;
  for (const location of index.bodyLocations.get(send.body) ?? []) {
    if (sentTo(send, location.queue) && (lowest === undefined || location.offset < lowest.offset)) lowest = location;
  }
  return lowest;
}

/** What findLost tallies besides the losses: acked sends it could not judge, and those retention took. */
export interface LossTallies {
  uncheckedAckedSends: number;
  retainedAwaySends: { count: number; readBeforeRetention: number };
}

/**
 * `lost`: a send that completed `ok`, completed before the final (last completed ok) drain of
 * its queue was invoked, stored at or above that drain's minOffset (judgeLoss), and whose body
 * that drain does not contain. Sends to a queue that was never drained, or still running when
 * the final drain began, cannot be judged; the report lists those (undrainedQueues,
 * uncheckedAckedSends) and the verdict is then at best unknown.
 * `ackTimesMs`: when each lost send was acknowledged, ascending — the loss window.
 */
export function findLost(index: HistoryIndex): AnomalyResult & LossTallies & { ackTimesMs: number[] } {
  const findings = new Findings();
  const ackTimesMs: number[] = [];
  let uncheckedAckedSends = 0;
  const retainedAwaySends = { count: 0, readBeforeRetention: 0 };
  for (const send of index.sends.values()) {
    if (send.outcome !== 'ok') continue;
    const judgement = judgeLoss(index, send);
    if (judgement.kind === 'unjudged') uncheckedAckedSends += 1;
    if (judgement.kind === 'retained') {
      retainedAwaySends.count += 1;
      if (index.bodyLocations.has(send.body)) retainedAwaySends.readBeforeRetention += 1;
    }
    if (judgement.kind !== 'lost') continue;
    const { drain } = judgement;
    const ack = send.completion;
    assert(ack !== undefined, 'an ok send has its completion');
    ackTimesMs.push(ack.time);
    findings.add(() => ({
      description: `send ${quote(send.body)} acked at ${send.queue} ${send.ackedOffset === undefined ? 'without an offset' : `offset ${send.ackedOffset}`} (${describeOp(ack)}) is missing from the final drain (${describeOp(drain.read)})`,
      body: send.body,
      queue: send.queue,
      ackedOffset: send.ackedOffset,
      send: ack,
      drain: drain.read,
    }));
  }
  ackTimesMs.sort((a, b) => a - b);
  return { ...findings.result(), ackTimesMs, uncheckedAckedSends, retainedAwaySends };
}

/**
 * `unexpected`: a read of queue Q showed body B at some offset, yet no send of B to Q was
 * invoked before that read completed — B was never sent, was sent to another queue, or was
 * only sent after the read returned it.
 */
export function findUnexpected(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const [body, locations] of index.bodyLocations) {
    const send = index.sends.get(body);
    const inTransaction = index.transactions.bodies.get(body);
    for (const location of locations) {
      if (send !== undefined && sentTo(send, location.queue) && send.invoke.line < location.read.line) continue;
      // A transaction's message: when it may show is tx-visible-early's to judge.
      if (inTransaction !== undefined && inTransaction.queue === location.queue) continue;
      const why =
        send === undefined ? 'no send ever invoked it' : !sentTo(send, location.queue) ? `it was sent to ${send.queue ?? `topic ${send.topic}`}` : `its send was invoked later, at line ${send.invoke.line}`;
      findings.add(() => ({
        description: `${describeOp(location.read)} returned ${quote(body)} at ${location.queue} offset ${location.offset}, but ${why}`,
        body,
        queue: location.queue,
        offset: location.offset,
        read: location.read,
        send: send?.invoke ?? null,
      }));
    }
  }
  return findings.result();
}

/**
 * `duplicate`: one body shown by reads at two or more distinct (queue, offset) places. The
 * same (queue, offset) read again, by the same or another process, is not a duplicate.
 */
export function findDuplicates(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const [body, locations] of index.bodyLocations) {
    if (locations.length < 2) continue;
    findings.add(() => ({
      description: `${quote(body)} is stored at ${locations.length} places: ${locations.map((l) => `${l.queue} offset ${l.offset} (line ${l.read.line})`).join(', ')}`,
      body,
      locations: locations.slice(0, examplesPerAnomalyMax),
      send: index.sends.get(body)?.invoke ?? null,
    }));
  }
  return findings.result();
}

/** `inconsistent-offsets`: reads showed two or more different bodies at one (queue, offset). */
export function findInconsistentOffsets(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const [queue, cells] of index.cells) {
    for (const [offset, cell] of cells) {
      if (cell.conflicts === undefined) continue;
      const shown = [{ body: cell.body, read: cell.read }, ...cell.conflicts];
      findings.add(() => ({
        description: `reads disagree on ${queue} offset ${offset}: ${shown.map((s) => `${quote(s.body)} (${describeOp(s.read)})`).join(' vs ')}`,
        queue,
        offset,
        reads: shown.slice(0, examplesPerAnomalyMax),
      }));
    }
  }
  return findings.result();
}

/**
 * `offset-mismatch`: a send whose `ok` named (Q, O) where a read shows a different body at
 * (Q, O), or whose body reads show only at other places, never at (Q, O). An ok that named
 * no offset (null, leader quorum) cannot mismatch.
 */
export function findOffsetMismatches(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const send of index.sends.values()) {
    if (send.outcome !== 'ok') continue;
    const acked = send.ackedOffset;
    if (acked === undefined) continue;
    const queue = ackedQueue(send);
    const cell = index.cells.get(queue)?.get(acked);
    const other = cell === undefined ? undefined : cell.body !== send.body ? cell : cell.conflicts?.find((c) => c.body !== send.body);
    const locations = index.bodyLocations.get(send.body) ?? [];
    const elsewhere = locations.some((l) => l.queue === queue && l.offset === acked) ? undefined : locations[0];
    if (other === undefined && elsewhere === undefined) continue;
    const ack = send.completion;
    assert(ack !== undefined, 'an ok send has its completion');
    findings.add(() => {
      const shown =
        other !== undefined
          ? `${describeOp(other.read)} shows ${quote(other.body)} there`
          : `reads show it only at ${elsewhere?.queue} offset ${elsewhere?.offset} (${elsewhere === undefined ? '' : describeOp(elsewhere.read)})`;
      return {
        description: `send ${quote(send.body)} was acked at ${queue} offset ${acked} (${describeOp(ack)}) but ${shown}`,
        body: send.body,
        queue,
        ackedOffset: acked,
        send: ack,
        readBody: other?.body ?? send.body,
        readOffset: other !== undefined ? acked : (elsewhere?.offset ?? null),
        read: other?.read ?? elsewhere?.read ?? null,
      };
    });
  }
  return findings.result();
}

interface PlacedSend {
  send: SendRecord;
  /** The lowest offset of its own queue where a read shows it; else its acked offset. */
  offset: number;
}

function placeSends(index: HistoryIndex): Map<string, PlacedSend[]> {
  const byQueue = new Map<string, PlacedSend[]>();
  for (const send of index.sends.values()) {
    const read = lowestReadLocation(index, send);
    const place = read ?? (send.outcome === 'ok' && send.ackedOffset !== undefined ? { queue: ackedQueue(send), offset: send.ackedOffset } : undefined);
    if (place === undefined) continue;
    let placed = byQueue.get(place.queue);
    if (placed === undefined) byQueue.set(place.queue, (placed = []));
    placed.push({ send, offset: place.offset });
  }
  return byQueue;
}

/**
 * `reorder`: sends A and B to one queue where A completed `ok` before B was invoked (A's
 * completion line < B's invoke line), yet A sits at a greater offset than B. A send's offset
 * is the lowest offset of its queue where a read shows its body, or, if no read shows it, the
 * offset its `ok` named (a send with neither is left out). B may be ok, info or fail (if it landed). Sends that overlap in time
 * may land in either order. Counted once per B, paired with the A at the greatest offset. A
 * delayed send (delayMs > 0) takes its place in the queue when it is due, so it is left out
 * (early-delivery and late-delivery judge it).
 */
export function findReorders(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const [queue, all] of placeSends(index)) {
    const placed = all.filter((p) => p.send.delay === undefined || p.send.delay.delayMs === 0);
    const acked = placed.filter((p) => p.send.outcome === 'ok').sort((a, b) => lineOf(a.send.completion) - lineOf(b.send.completion));
    const byInvoke = [...placed].sort((a, b) => a.send.invoke.line - b.send.invoke.line);
    let highest: PlacedSend | undefined;
    let next = 0;
    for (const later of byInvoke) {
      for (; next < acked.length; next++) {
        const earlier = acked[next];
        assert(earlier !== undefined, 'index within acked');
        if (lineOf(earlier.send.completion) > later.send.invoke.line) break;
        if (highest === undefined || earlier.offset > highest.offset) highest = earlier;
      }
      if (highest === undefined || highest.offset <= later.offset) continue;
      const earlier = highest;
      findings.add(() => ({
        description: `on ${queue}, ${quote(earlier.send.body)} (${describeOp(lineRef(earlier.send.completion))}) completed before ${quote(later.send.body)} was invoked (${describeOp(later.send.invoke)}), yet sits at offset ${earlier.offset} after it at ${later.offset}`,
        queue,
        earlier: { body: earlier.send.body, offset: earlier.offset, send: earlier.send.completion },
        later: { body: later.send.body, offset: later.offset, send: later.send.invoke },
      }));
    }
  }
  return findings.result();
}

function lineRef(ref: OpRef | undefined): OpRef {
  assert(ref !== undefined, 'a completed send has its completion');
  return ref;
}

function lineOf(ref: OpRef | undefined): number {
  return lineRef(ref).line;
}

/** `failed-present`: a send that completed `fail` (definitely not stored) whose body a read shows. */
export function findFailedPresent(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const send of index.sends.values()) {
    if (send.outcome !== 'fail') continue;
    const location: BodyLocation | undefined = index.bodyLocations.get(send.body)?.[0];
    if (location === undefined) continue;
    const failed = lineRef(send.completion);
    findings.add(() => ({
      description: `send ${quote(send.body)} failed (${describeOp(failed)}) yet ${describeOp(location.read)} returned it at ${location.queue} offset ${location.offset}`,
      body: send.body,
      queue: location.queue,
      send: failed,
      location,
    }));
  }
  return findings.result();
}

/**
 * `nonmonotonic-poll`: one process's reads of one queue went backwards or repeated: a read
 * (poll or drain) whose offsets do not strictly increase, a poll whose first offset is ≤ the
 * last offset of the same process's previous ok poll of that queue, or a poll with `from` F
 * whose first offset is < F. Re-reading by a NEW process (a restarted consumer) is fine, and
 * so are a process's failed polls (they returned nothing).
 */
export function findNonmonotonicPolls(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const step of index.readSteps) {
    if (step.nextOffset > step.previousOffset) continue;
    findings.add(() => ({
      description: `process ${step.process} read ${step.queue} offset ${step.nextOffset} after offset ${step.previousOffset} (${stepWhere(step)})`,
      process: step.process,
      queue: step.queue,
      previousOffset: step.previousOffset,
      offset: step.nextOffset,
      previousRead: step.previousRead,
      read: step.read,
    }));
  }
  return findings.result();
}

function stepWhere(step: ReadStep): string {
  if (step.kind === 'within') return `within ${describeOp(step.read)}`;
  if (step.kind === 'from') return `${describeOp(step.read)}, which asked to start at ${step.previousOffset + 1}`;
  return `${describeOp(step.read)}, after ${describeOp(step.previousRead)}`;
}

/** Offsets of `sorted` strictly between `low` and `high`, ascending. */
function offsetsBetween(sorted: readonly number[], low: number, high: number): number[] {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] ?? Infinity) <= low) lo = mid + 1;
    else hi = mid;
  }
  const between: number[] = [];
  for (let i = lo; i < sorted.length; i++) {
    const offset = sorted[i];
    assert(offset !== undefined && offset > low, 'binary search lands past low');
    if (offset >= high) break;
    between.push(offset);
  }
  return between;
}

/**
 * `poll-skip`: a read jumped over an offset that exists (some read shows it) without returning
 * it: between two messages of one poll; between a process's successive ok polls of a queue
 * (after last offset L, the next poll starts at F > L + 1 while some read shows an offset in
 * (L, F)); from a poll's `from` offset to its first message; or a drain (which reads the whole
 * queue) lacks an offset some read shows that is ≤ the drain's last offset or was read before
 * the drain was invoked (and is not below the drain's minOffset). A process's FIRST poll of a queue may start anywhere (a consumer
 * joins at its group's committed offset), so only gaps after a known position count.
 */
export function findPollSkips(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const step of index.readSteps) {
    if (step.nextOffset <= step.previousOffset + 1) continue;
    const between = offsetsBetween(index.existingOffsets.get(step.queue) ?? [], step.previousOffset, step.nextOffset);
    // A tag-filtered poll skips the messages of other tags by design: only matching ones count.
    const skipped = step.filterTags === undefined ? between : between.filter((offset) => matchesTags(index, step.queue, offset, step.filterTags!));
    if (skipped.length === 0) continue;
    findings.add(() => ({
      description: `process ${step.process} read ${step.queue} offset ${step.nextOffset} after ${step.previousOffset}, skipping existing offset(s) ${listOffsets(skipped)} (${stepWhere(step)})`,
      process: step.process,
      queue: step.queue,
      afterOffset: step.previousOffset,
      nextOffset: step.nextOffset,
      skippedOffsets: skipped.slice(0, skippedOffsetsListedMax),
      skippedCount: skipped.length,
      previousRead: step.previousRead,
      read: step.read,
    }));
  }
  for (const drains of index.drains.values()) {
    for (const drain of drains) findDrainSkips(index, drain, findings);
  }
  return findings.result();
}

function listOffsets(offsets: readonly number[]): string {
  const listed = offsets.slice(0, skippedOffsetsListedMax).join(', ');
  return offsets.length > skippedOffsetsListedMax ? `${listed}, … (${offsets.length} in all)` : listed;
}

/** One finding per run of existing offsets the drain lacks (a run: consecutive in the queue's existing offsets). */
function findDrainSkips(index: HistoryIndex, drain: DrainRecord, findings: Findings): void {
  const existing = index.existingOffsets.get(drain.queue) ?? [];
  const returned = new Set(drain.offsets);
  let upper = drain.offsets.reduce((max, o) => Math.max(max, o), -1);
  for (const [offset, cell] of index.cells.get(drain.queue) ?? []) {
    if (cell.read.line < drain.invoke.line) upper = Math.max(upper, offset);
  }
  let run: number[] = [];
  const flush = (): void => {
    if (run.length === 0) return;
    const skipped = run;
    run = [];
    findings.add(() => ({
      description: `${describeOp(drain.read)} of ${drain.queue} lacks existing offset(s) ${listOffsets(skipped)}`,
      process: drain.read.process,
      queue: drain.queue,
      skippedOffsets: skipped.slice(0, skippedOffsetsListedMax),
      skippedCount: skipped.length,
      read: drain.read,
    }));
  };
  for (const offset of existing) {
    if (offset < drain.minOffset) continue; // deleted by retention before the drain began
    if (offset > upper) break;
    if (returned.has(offset)) flush();
    else run.push(offset);
  }
  flush();
}

/** Whether the message some read showed at (queue, offset) was sent with one of `tags`. */
function matchesTags(index: HistoryIndex, queue: string, offset: number, tags: readonly string[]): boolean {
  const body = index.cells.get(queue)?.get(offset)?.body;
  const tag = body === undefined ? undefined : index.sends.get(body)?.tag;
  return tag !== undefined && tags.includes(tag);
}

/**
 * `filter-mismatch`: a tag-filtered poll returned a message whose send named no tag, or a tag
 * the poll did not filter on — the broker delivered what the subscription excludes.
 */
export function findFilterMismatches(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const read of index.filteredReads) {
    const send = index.sends.get(read.body);
    if (send === undefined || (send.tag !== undefined && read.filterTags.includes(send.tag))) continue;
    findings.add(() => ({
      description: `${describeOp(read.read)} filtered on tags ${read.filterTags.join(' || ')} yet returned ${quote(read.body)} at ${read.queue} offset ${read.offset}, sent ${send.tag === undefined ? 'without a tag' : `with tag ${send.tag}`}`,
      body: read.body, queue: read.queue, offset: read.offset, read: read.read, tag: send.tag ?? null,
    }));
  }
  return findings.result();
}
