// The transactional anomalies (issue 16's tx workload) and the index they read: each
// transaction's half messages (`txsend`) and every end asked for it (`txend`, by its producer
// or by a responder answering a check-back). Judged against the final drains and every read:
// a transaction's messages become visible all together at its commit, or never.
import { assert } from '../util/assert.js';
import type { TxMessage } from './history.js';
import type { DrainRecord, HistoryIndex } from './indexes.js';
import type { CompletedOperation, OpRef, PendingOperation } from './pairing.js';
import { type AnomalyResult, describeOp, Findings, quote } from './findings.js';

/** One end asked for a transaction, and how it ended. */
export interface TxEndRecord {
  end: 'commit' | 'rollback';
  by: 'producer' | 'check';
  invoke: OpRef;
  /** ok: the broker acknowledged this end; undefined while in flight. */
  outcome: 'ok' | 'fail' | 'info' | undefined;
}

export interface TransactionRecord {
  txId: string;
  messages: TxMessage[];
  send: OpRef;
  /** ok: every half message is stored; anything else leaves which ones unknown. */
  sendOutcome: 'ok' | 'fail' | 'info' | undefined;
  ends: TxEndRecord[];
}

export interface TransactionIndex {
  /** txId → its transaction. */
  transactions: Map<string, TransactionRecord>;
  /** body → the transaction it belongs to (its queue is in the message). */
  bodies: Map<string, { transaction: TransactionRecord; queue: string }>;
}

export class TransactionIndexBuilder {
  readonly index: TransactionIndex = { transactions: new Map(), bodies: new Map() };

  invoked(operation: PendingOperation): void {
    const event = operation.invokeEvent;
    if (event.f === 'txsend') {
      const { txId, messages } = event.value;
      const transaction: TransactionRecord = { txId, messages, send: operation.invoke, sendOutcome: undefined, ends: [] };
      this.index.transactions.set(txId, transaction);
      for (const m of messages) this.index.bodies.set(m.body, { transaction, queue: m.queue });
    } else if (event.f === 'txend') {
      const transaction = this.index.transactions.get(event.value.txId);
      assert(transaction !== undefined, 'pairing refuses a txend of an unknown transaction');
      transaction.ends.push({ end: event.value.end, by: event.value.by, invoke: operation.invoke, outcome: undefined });
    }
  }

  completed(operation: CompletedOperation): void {
    const event = operation.invokeEvent;
    if (event.f === 'txsend') {
      this.index.transactions.get(event.value.txId)!.sendOutcome = operation.outcome;
    } else if (event.f === 'txend') {
      const end = this.index.transactions.get(event.value.txId)!.ends.find((e) => e.invoke.line === operation.invoke.line);
      end!.outcome = operation.outcome;
    }
  }
}

/** The last ok drain of a queue, the authority for what it holds. */
function finalDrain(index: HistoryIndex, queue: string): DrainRecord | undefined {
  const drains = index.drains.get(queue);
  return drains?.[drains.length - 1];
}

/** Which of the transaction's messages the final drains hold; undefined if a queue was never drained. */
function visibleAtEnd(index: HistoryIndex, transaction: TransactionRecord): TxMessage[] | undefined {
  const visible: TxMessage[] = [];
  for (const m of transaction.messages) {
    const drain = finalDrain(index, m.queue);
    if (drain === undefined) return undefined;
    if (drain.bodies.has(m.body)) visible.push(m);
  }
  return visible;
}

const acknowledged = (transaction: TransactionRecord, end: 'commit' | 'rollback') => transaction.ends.find((e) => e.end === end && e.outcome === 'ok');

/**
 * `tx-committed-lost`: a transaction whose half messages were all stored and whose commit the
 * broker acknowledged, yet a final drain lacks one of its messages.
 */
export function findTxCommittedLost(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const transaction of index.transactions.transactions.values()) {
    const commit = acknowledged(transaction, 'commit');
    const visible = visibleAtEnd(index, transaction);
    if (commit === undefined || transaction.sendOutcome !== 'ok' || visible === undefined || visible.length === transaction.messages.length) continue;
    const missing = transaction.messages.filter((m) => !visible.includes(m));
    findings.add(() => ({
      description: `transaction ${transaction.txId}'s commit was acknowledged (${describeOp(commit.invoke)}, by ${commit.by}), but the final drains lack ${missing.map((m) => `${quote(m.body)} of ${m.queue}`).join(', ')}`,
      txId: transaction.txId, missing: missing.map((m) => m.body), commit: commit.invoke,
    }));
  }
  return findings.result();
}

/** `tx-rolled-back-visible`: a transaction whose rollback the broker acknowledged, yet some read showed one of its messages. */
export function findTxRolledBackVisible(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const transaction of index.transactions.transactions.values()) {
    const rollback = acknowledged(transaction, 'rollback');
    if (rollback === undefined) continue;
    const shown = transaction.messages.find((m) => index.bodyLocations.has(m.body));
    if (shown === undefined) continue;
    const read = index.bodyLocations.get(shown.body)![0]!.read;
    findings.add(() => ({
      description: `transaction ${transaction.txId}'s rollback was acknowledged (${describeOp(rollback.invoke)}, by ${rollback.by}), yet ${describeOp(read)} showed its ${quote(shown.body)}`,
      txId: transaction.txId, body: shown.body, read, rollback: rollback.invoke,
    }));
  }
  return findings.result();
}

/**
 * `tx-partial`: a transaction whose half messages were all stored, of which the final drains
 * hold some but not all — all or none must become visible.
 */
export function findTxPartial(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const transaction of index.transactions.transactions.values()) {
    const visible = visibleAtEnd(index, transaction);
    if (transaction.sendOutcome !== 'ok' || visible === undefined || visible.length === 0 || visible.length === transaction.messages.length) continue;
    findings.add(() => ({
      description: `transaction ${transaction.txId} has ${visible.length} of its ${transaction.messages.length} messages in the final drains (${visible.map((m) => quote(m.body)).join(', ')})`,
      txId: transaction.txId, visible: visible.map((m) => m.body), messages: transaction.messages.length,
    }));
  }
  return findings.result();
}

/**
 * `tx-visible-early`: a read that completed before any commit of the message's transaction
 * was asked (by its producer or a check-back responder) showed that message — a half message
 * visible before its commit began, or with no commit asked at all.
 */
export function findTxVisibleEarly(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const transaction of index.transactions.transactions.values()) {
    const firstCommitLine = Math.min(...transaction.ends.filter((e) => e.end === 'commit').map((e) => e.invoke.line));
    for (const m of transaction.messages) {
      const early = index.bodyLocations.get(m.body)?.find((location) => location.read.line < firstCommitLine);
      if (early === undefined) continue;
      findings.add(() => ({
        description: `${describeOp(early.read)} showed ${quote(m.body)} of transaction ${transaction.txId} ${Number.isFinite(firstCommitLine) ? `before its commit was asked (line ${firstCommitLine})` : 'though no commit of it was ever asked'}`,
        txId: transaction.txId, body: m.body, read: early.read,
      }));
      break;
    }
  }
  return findings.result();
}
