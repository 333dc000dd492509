// The checker's report: its shape (CONTRACT.md `check --json`), the verdict rule, and the
// human summary `ledgermq check` prints by default.
import { assert } from '../util/assert.js';
import {
  findDuplicates,
  findFailedPresent,
  findInconsistentOffsets,
  findLost,
  findNonmonotonicPolls,
  findOffsetMismatches,
  findFilterMismatches,
  findPollSkips,
  findReorders,
  findUnexpected,
  type AnomalyExample,
  type AnomalyResult,
} from './anomalies.js';
import { findKeyReorders } from './key-order.js';
import { findTxCommittedLost, findTxPartial, findTxRolledBackVisible, findTxVisibleEarly } from './transactions.js';
import { findAckLost, findDlqEarly, findEarlyDeliveries, findLateDeliveries, findLostRetries, findOrderlyOverlaps, findRetryExceeded } from './consumption.js';
import type { HistoryIndex, HistoryStats } from './indexes.js';

/** Anomalies of the log and its queues: what sends, polls and drains show. */
export const queueAnomalyKinds = [
  'lost',
  'unexpected',
  'duplicate',
  'inconsistent-offsets',
  'offset-mismatch',
  'reorder',
  'failed-present',
  'nonmonotonic-poll',
  'poll-skip',
] as const;
/** A key's order across queues, once a topic's growth moved it (key-order.ts). */
export const keyOrderAnomalyKinds = ['key-reorder'] as const;
/** Anomalies of consumption (consumption.ts): retries, dead letters, orderly consumption, delayed delivery. */
export const consumptionAnomalyKinds = ['lost-retry', 'retry-exceeded', 'dlq-early', 'ack-lost', 'orderly-overlap', 'early-delivery', 'late-delivery', 'filter-mismatch'] as const;
/** Transactions' anomalies (transactions.ts). */
export const transactionAnomalyKinds = ['tx-committed-lost', 'tx-rolled-back-visible', 'tx-partial', 'tx-visible-early'] as const;
export const anomalyKinds = [...queueAnomalyKinds, ...keyOrderAnomalyKinds, ...consumptionAnomalyKinds, ...transactionAnomalyKinds] as const;
export type AnomalyKind = (typeof anomalyKinds)[number];

/** Every kind but `lost` and `lost-retry`, which buildReport runs itself for their tallies. */
const anomalyFinders: Readonly<Record<Exclude<AnomalyKind, 'lost' | 'lost-retry'>, (index: HistoryIndex) => AnomalyResult>> = {
  unexpected: findUnexpected,
  duplicate: findDuplicates,
  'inconsistent-offsets': findInconsistentOffsets,
  'offset-mismatch': findOffsetMismatches,
  reorder: findReorders,
  'key-reorder': findKeyReorders,
  'failed-present': findFailedPresent,
  'nonmonotonic-poll': findNonmonotonicPolls,
  'poll-skip': findPollSkips,
  'retry-exceeded': findRetryExceeded,
  'dlq-early': findDlqEarly,
  'ack-lost': findAckLost,
  'orderly-overlap': findOrderlyOverlaps,
  'early-delivery': findEarlyDeliveries,
  'late-delivery': findLateDeliveries,
  'filter-mismatch': findFilterMismatches,
  'tx-committed-lost': findTxCommittedLost,
  'tx-rolled-back-visible': findTxRolledBackVisible,
  'tx-partial': findTxPartial,
  'tx-visible-early': findTxVisibleEarly,
};

/**
 * `valid`: no anomaly and every acked send could be judged for loss. `invalid`: at least one
 * anomaly. `unknown`: no anomaly found, but some acked sends could not be judged for `lost`
 * (their queue was never drained, or they were still running when its final drain began) —
 * like Jepsen's :unknown, it is not a pass. `valid` (the boolean) is true only for `valid`.
 */
export type Verdict = 'valid' | 'invalid' | 'unknown';

export interface CheckReport {
  valid: boolean;
  verdict: Verdict;
  counts: Record<AnomalyKind, number>;
  /** Up to examplesPerAnomalyMax examples per kind, first in history order; [] when none. */
  anomalies: Record<AnomalyKind, AnomalyExample[]>;
  /** Queues that were sent to but never drained with an ok drain, sorted. */
  undrainedQueues: string[];
  /** Acked sends whose loss could not be judged (see Verdict). */
  uncheckedAckedSends: number;
  /** In a history with deliveries: acked sends `lost-retry` could not judge (no final dlq read, or sent during it). */
  uncheckedRetrySends: number;
  /**
   * Acked sends stored below the final drain's minOffset (retention deleted them before the
   * drain), so not judged for `lost`; `readBeforeRetention` of them some read did show.
   */
  retainedAwaySends: { count: number; readBeforeRetention: number };
  /** When each lost send was acknowledged (history time, ascending): the window the loss covers. */
  lostAckTimesMs: number[];
  stats: HistoryStats;
}

/** Runs every anomaly function over the shared index and decides the verdict. */
export function buildReport(index: HistoryIndex): CheckReport {
  const counts = {} as Record<AnomalyKind, number>;
  const anomalies = {} as Record<AnomalyKind, AnomalyExample[]>;
  let anomalyCount = 0;
  const lost = findLost(index);
  const lostRetries = findLostRetries(index);
  for (const kind of anomalyKinds) {
    const result = kind === 'lost' ? lost : kind === 'lost-retry' ? lostRetries : anomalyFinders[kind](index);
    assert(Number.isSafeInteger(result.count) && result.count >= 0, 'an anomaly count is a natural number');
    counts[kind] = result.count;
    anomalies[kind] = result.examples;
    anomalyCount += result.count;
  }
  const drained = new Set(index.drains.keys());
  const sentQueues = new Set<string>();
  const { uncheckedAckedSends, retainedAwaySends } = lost;
  for (const send of index.sends.values()) if (send.queue !== undefined) sentQueues.add(send.queue);
  const undrainedQueues = [...sentQueues].filter((q) => !drained.has(q)).sort();
  const uncheckedRetrySends = lostRetries.unchecked;
  const verdict: Verdict = anomalyCount > 0 ? 'invalid' : uncheckedAckedSends > 0 || uncheckedRetrySends > 0 ? 'unknown' : 'valid';
  assert(verdict !== 'valid' || anomalyCount === 0, 'a valid verdict has no anomaly');
  assert(lost.ackTimesMs.length === counts.lost, 'one ack time per lost send');
  return { valid: verdict === 'valid', verdict, counts, anomalies, undrainedQueues, uncheckedAckedSends, uncheckedRetrySends, retainedAwaySends, lostAckTimesMs: lost.ackTimesMs, stats: index.stats };
}

/** The human summary: verdict line, what the history held, then each anomaly with its examples. */
export function formatReport(report: CheckReport): string {
  const s = report.stats;
  const lines: string[] = [];
  if (s.events === 0) {
    lines.push(`${report.verdict.toUpperCase()}: no operations in the history`);
    return lines.join('\n') + '\n';
  }
  const total = anomalyKinds.reduce((sum, kind) => sum + report.counts[kind], 0);
  const headline =
    report.verdict === 'valid'
      ? 'no anomalies'
      : report.verdict === 'invalid'
        ? `${total} anomal${total === 1 ? 'y' : 'ies'}`
        : report.uncheckedAckedSends > 0
          ? `no anomalies found, but ${report.uncheckedAckedSends} acked send(s) could not be checked for loss`
          : `no anomalies found, but ${report.uncheckedRetrySends} acked send(s) could not be checked for lost retries (no final dead-letter read)`;
  lines.push(`${report.verdict.toUpperCase()}: ${headline}`);
  lines.push(
    `  ${s.sends} sends (${s.acked} ok, ${s.failed} fail, ${s.info} info, ${s.incomplete} incomplete ops), ${s.polls} polls, ${s.drains} drains, ${s.messagesRead} messages read, ${s.queues} queues`,
  );
  const retained = report.retainedAwaySends;
  if (retained.count > 0) {
    lines.push(`  ${retained.count} acked send(s) were deleted by retention before the final drain (not judged for loss; ${retained.readBeforeRetention} of them read before)`);
  }
  if (report.undrainedQueues.length > 0) {
    lines.push(`  never drained (lost cannot be judged there): ${report.undrainedQueues.join(', ')}`);
  }
  for (const kind of anomalyKinds) {
    const count = report.counts[kind];
    if (count === 0) continue;
    lines.push(`  ${kind}: ${count}`);
    for (const example of report.anomalies[kind]) lines.push(`    - ${example.description}`);
    if (count > report.anomalies[kind].length) lines.push(`    … and ${count - report.anomalies[kind].length} more`);
  }
  return lines.join('\n') + '\n';
}
