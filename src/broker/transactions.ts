// Transactional messages in the replicated state: RocketMQ's half topic (RMQ_SYS_TRANS_HALF_TOPIC),
// its op topic and the check-back bookkeeping of TransactionalMessageCheckService, kept as
// records of the state machine instead of two system topics, so every rule is decided once,
// in apply, from replicated state.
//
// - txHalf stores half messages of a transaction in the half index, with their bodies (the
//   produce entry that carried them may be deleted by retention before the end). They are in
//   no consume queue: no consumer can see them. A repeat of a half send (the same msgIds, a
//   retry across a leader change) stores nothing more. A transaction holds at most what one
//   produce carries (maxMessagesPerProduce messages, maxProduceBodyBytes of bodies), so its
//   commit fits one entry.
// - txEnd is the one end of a transaction: a commit carries every half message (the leader
//   copies them from the half index) and places them at the commit's own log position, as a
//   produce places (consume queue, key and msgId indexes; placement.ts) — queue order is commit
//   order, and all of a transaction's messages become visible in one apply or none do. The end
//   is remembered (txEnded), so a second end — a retry, or a check-back answer racing the
//   producer's own end — answers the first outcome and changes nothing. A commit whose messages
//   are not exactly the transaction's (a half send applied after the leader read them) is
//   stale: nothing happens and the leader builds it again.
// - txChecked counts check-backs: per transaction the check count and next due time, applied
//   only when the count is the one the proposing leader read (a new leader repeating an old
//   leader's proposal counts once). The leader's check service (tx-checker.ts) proposes it, and
//   after transaction.maxChecks a rollback (source maxChecks).
//
// Records (store.ts's layout):
//   ['tx', txId]                           → [producerGroup, producerId, storedAtMs, checks, nextCheckAtMs, messages, bodyBytes, topics]
//   ['txMsg', txId, logIndex, position]    → ProduceMessage   (half messages, in the order they were stored)
//   ['txDue', nextCheckAtMs, txId]         → 1                (open transactions in check order)
//   ['txEnded', txId]                      → [outcome, producerGroup, endLogIndex]
//   ['txEndOrder', endLogIndex]            → txId             (ended ones, oldest first, at most MAX_ENDED_TRANSACTIONS)
// All are in snapshots (snapshot.ts): the retained log cannot give them back.
import { LIMITS, type TxSummary } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { type BrokerCommand, carriedMessageProblem, type ProduceMessage, type TxOutcome } from './commands.js';
import { type PlacedItem, placedItems, queueKey } from './placement.js';
import { type BrokerStore, type Key, MAX_KEY_PART, type Placement } from './store.js';

export const TX_KIND = 'tx';
export const TX_MESSAGE_KIND = 'txMsg';
export const TX_DUE_KIND = 'txDue';
export const TX_ENDED_KIND = 'txEnded';
export const TX_END_ORDER_KIND = 'txEndOrder';
export const TX_OPEN_COUNT_META = 'txOpenCount';
export const TX_ENDED_COUNT_META = 'txEndedCount';

/** Open transactions at most; a half send that would open one more is refused (LMQ_OVERLOADED). */
export const MAX_OPEN_TRANSACTIONS = 100_000;
/**
 * Ended transactions remembered (their outcome answers a repeated end); the oldest is forgotten
 * beyond this, after which an end of it is refused as unknown.
 */
export const MAX_ENDED_TRANSACTIONS = 100_000;

type HalfCommand = Extract<BrokerCommand, { kind: 'txHalf' }>;
type EndCommand = Extract<BrokerCommand, { kind: 'txEnd' }>;
type CheckedCommand = Extract<BrokerCommand, { kind: 'txChecked' }>;
type QueueProblem = { error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT'; message: string };

export type TxApplyResult =
  | { kind: 'txHalf'; txId: string; messages: number; duplicate: boolean }
  | { kind: 'txHalf'; error: QueueProblem['error'] | 'LMQ_OVERLOADED'; message: string }
  | { kind: 'txEnd'; outcome: TxOutcome; duplicate: boolean; placed: Placement[] }
  /** The commit carried other messages than the transaction holds now: nothing changed; build it again. */
  | { kind: 'txEnd'; stale: true }
  | { kind: 'txEnd'; error: 'LMQ_BAD_INPUT'; message: string }
  /** counted: the marks applied (the others named an ended transaction or a count already made). */
  | { kind: 'txChecked'; counted: number };

/** An open transaction: its summary and half messages, in the order they were stored. */
export interface OpenTransaction extends TxSummary {
  readonly bodyBytes: number;
  readonly halfMessages: readonly ProduceMessage[];
}

export interface EndedTransaction {
  readonly outcome: TxOutcome;
  readonly producerGroup: string;
}

/** Stores half messages: opens the transaction, adds to it, or (a repeat) stores nothing. */
export function applyTxHalf(store: BrokerStore, command: HalfCommand, logIndex: number, queueProblem: (topic: string, queueId: number) => QueueProblem | undefined): TxApplyResult {
  const { txId } = command;
  const ended = getEnded(store, txId);
  if (ended !== undefined) return { kind: 'txHalf', error: 'LMQ_BAD_INPUT', message: `transaction ${txId} has already ended (${ended.outcome}); begin a new one` };
  for (const message of command.messages) {
    const problem = queueProblem(message.topic, message.queueId);
    if (problem !== undefined) return { kind: 'txHalf', ...problem };
  }
  const open = getOpen(store, txId);
  if (open !== undefined && open.producerGroup !== command.producerGroup) {
    return { kind: 'txHalf', error: 'LMQ_BAD_INPUT', message: `transaction ${txId} belongs to producer group ${open.producerGroup}, not ${command.producerGroup}` };
  }
  const known = new Set((open === undefined ? [] : listHalfMessages(store, txId)).map((m) => m.msgId));
  const repeated = command.messages.filter((m) => known.has(m.msgId)).length;
  if (repeated === command.messages.length) {
    assert(open !== undefined, 'a repeated half send has its transaction');
    return { kind: 'txHalf', txId, messages: open.messages, duplicate: true };
  }
  if (repeated > 0) return { kind: 'txHalf', error: 'LMQ_BAD_INPUT', message: `a half send of transaction ${txId} repeats some of its msgIds but not all; send each message once, retries unchanged` };
  const messages = (open?.messages ?? 0) + command.messages.length;
  const bodyBytes = (open?.bodyBytes ?? 0) + command.messages.reduce((sum, m) => sum + m.body.byteLength, 0);
  if (messages > LIMITS.maxMessagesPerProduce || bodyBytes > LIMITS.maxProduceBodyBytes) {
    const message = `transaction ${txId} would hold ${messages} messages of ${bodyBytes} body bytes; one transaction holds at most ${LIMITS.maxMessagesPerProduce} messages and ${LIMITS.maxProduceBodyBytes} bytes (what one commit entry carries)`;
    return { kind: 'txHalf', error: 'LMQ_BAD_INPUT', message };
  }
  const openCount = store.getMeta(TX_OPEN_COUNT_META) ?? 0;
  if (open === undefined && openCount >= MAX_OPEN_TRANSACTIONS) {
    return { kind: 'txHalf', error: 'LMQ_OVERLOADED', message: `the cluster holds ${openCount} open transactions, the most it keeps (${MAX_OPEN_TRANSACTIONS}); end some, then retry` };
  }
  command.messages.forEach((message, position) => store.insert([TX_MESSAGE_KIND, txId, logIndex, position], message));
  const topics = [...(open?.topics ?? [])];
  for (const message of command.messages) if (!topics.includes(message.topic)) topics.push(message.topic);
  const record: OpenRecord = open ?? { producerGroup: command.producerGroup, producerId: command.producerId, storedAtMs: command.timestampMs, checks: 0, nextCheckAtMs: command.checkAtMs, messages: 0, bodyBytes: 0, topics: [] };
  if (open === undefined) {
    store.putMeta(TX_OPEN_COUNT_META, openCount + 1);
    store.insert(dueKey(record.nextCheckAtMs, txId), 1);
  }
  putOpen(store, txId, { ...record, messages, bodyBytes, topics });
  return { kind: 'txHalf', txId, messages, duplicate: false };
}

/**
 * Ends a transaction once. `place` places a commit's messages at this entry (the state
 * machine's placement); the caller marks the entry unplaced when a commit placed nothing.
 */
export function applyTxEnd(store: BrokerStore, command: EndCommand, logIndex: number, place: (items: readonly PlacedItem[]) => Placement[]): TxApplyResult {
  const { txId } = command;
  const ended = getEnded(store, txId);
  if (ended !== undefined) return { kind: 'txEnd', outcome: ended.outcome, duplicate: true, placed: [] };
  const open = getOpen(store, txId);
  if (open === undefined) return { kind: 'txEnd', error: 'LMQ_BAD_INPUT', message: `no transaction ${txId}: it was never begun here, or ended so long ago that it is forgotten` };
  const halfMessages = listHalfMessages(store, txId);
  assert(halfMessages.length === open.messages, () => `transaction ${txId} counts ${open.messages} messages but holds ${halfMessages.length}`);
  if (command.outcome === 'commit' && !sameMessages(command.messages, halfMessages)) return { kind: 'txEnd', stale: true };
  const placed = command.outcome === 'commit' ? place(placedItems(command, new Set())) : [];
  assert(placed.length === command.messages.length, 'a commit places every message it carries');
  for (const { key } of store.range([TX_MESSAGE_KIND, txId], [TX_MESSAGE_KIND, txId, MAX_KEY_PART], LIMITS.maxMessagesPerProduce)) store.remove(key);
  store.remove(dueKey(open.nextCheckAtMs, txId));
  store.remove([TX_KIND, txId]);
  const openCount = store.getMeta(TX_OPEN_COUNT_META) ?? 0;
  assert(openCount >= 1, 'an open transaction is counted');
  store.putMeta(TX_OPEN_COUNT_META, openCount - 1);
  remember(store, txId, command.outcome, open.producerGroup, logIndex);
  return { kind: 'txEnd', outcome: command.outcome, duplicate: false, placed };
}

/** Counts each mark whose transaction is open with one check fewer; moves its due time. */
export function applyTxChecked(store: BrokerStore, command: CheckedCommand): TxApplyResult {
  let counted = 0;
  for (const mark of command.checks) {
    const open = getOpen(store, mark.txId);
    if (open === undefined || open.checks !== mark.checks - 1) continue;
    store.remove(dueKey(open.nextCheckAtMs, mark.txId));
    store.insert(dueKey(mark.nextCheckAtMs, mark.txId), 1);
    putOpen(store, mark.txId, { ...open, checks: mark.checks, nextCheckAtMs: mark.nextCheckAtMs });
    counted++;
  }
  assert(counted <= command.checks.length, 'at most one count per mark');
  return { kind: 'txChecked', counted };
}

// --- queries ---------------------------------------------------------------------------------

export function openTransaction(store: BrokerStore, txId: string): OpenTransaction | undefined {
  const open = getOpen(store, txId);
  if (open === undefined) return undefined;
  return { ...summaryOf(txId, open), bodyBytes: open.bodyBytes, halfMessages: listHalfMessages(store, txId) };
}

export function endedTransaction(store: BrokerStore, txId: string): EndedTransaction | undefined {
  return getEnded(store, txId);
}

/** Open transactions whose next check is due at or before nowMs, in due order, at most max. */
export function dueTransactions(store: BrokerStore, nowMs: number, max: number): TxSummary[] {
  return store.range([TX_DUE_KIND], [TX_DUE_KIND, nowMs + 0.5], max).map(({ key }) => {
    const txId = key[2] as string;
    const open = getOpen(store, txId);
    assert(open !== undefined, () => `due check of transaction ${txId}, which is not open`);
    return summaryOf(txId, open);
  });
}

/** Open transactions, at most max, oldest first. */
export function listTransactions(store: BrokerStore, max: number): TxSummary[] {
  const listed = store.range([TX_KIND], [TX_KIND, MAX_KEY_PART], max).map(({ key, value }) => summaryOf(key[1] as string, decodeOpen(value)));
  return listed.sort((a, b) => a.storedAtMs - b.storedAtMs || (a.txId < b.txId ? -1 : 1));
}

// --- records ---------------------------------------------------------------------------------

interface OpenRecord {
  producerGroup: string;
  producerId: string;
  storedAtMs: number;
  checks: number;
  nextCheckAtMs: number;
  messages: number;
  bodyBytes: number;
  topics: string[];
}

function summaryOf(txId: string, open: OpenRecord): TxSummary {
  const { producerGroup, producerId, topics, messages, storedAtMs, checks, nextCheckAtMs } = open;
  return { txId, producerGroup, producerId, topics, messages, storedAtMs, checks, nextCheckAtMs };
}

function getOpen(store: BrokerStore, txId: string): OpenRecord | undefined {
  const value = store.get([TX_KIND, txId]);
  return value === undefined ? undefined : decodeOpen(value);
}

function putOpen(store: BrokerStore, txId: string, record: OpenRecord): void {
  assert(record.messages >= 1 && record.topics.length >= 1, 'an open transaction holds messages');
  const { producerGroup, producerId, storedAtMs, checks, nextCheckAtMs, messages, bodyBytes, topics } = record;
  store.put([TX_KIND, txId], [producerGroup, producerId, storedAtMs, checks, nextCheckAtMs, messages, bodyBytes, topics]);
}

function decodeOpen(value: unknown): OpenRecord {
  assert(openValueProblem(value) === undefined, () => `a transaction record ${openValueProblem(value)}`);
  const [producerGroup, producerId, storedAtMs, checks, nextCheckAtMs, messages, bodyBytes, topics] = value as [string, string, number, number, number, number, number, string[]];
  return { producerGroup, producerId, storedAtMs, checks, nextCheckAtMs, messages, bodyBytes, topics };
}

function getEnded(store: BrokerStore, txId: string): EndedTransaction | undefined {
  const value = store.get([TX_ENDED_KIND, txId]);
  if (value === undefined) return undefined;
  assert(endedValueProblem(value) === undefined, 'an ended transaction record is [outcome, producerGroup, endLogIndex]');
  const [outcome, producerGroup] = value as [TxOutcome, string, number];
  return { outcome, producerGroup };
}

/** Records the end; forgets the oldest remembered end beyond MAX_ENDED_TRANSACTIONS. */
function remember(store: BrokerStore, txId: string, outcome: TxOutcome, producerGroup: string, logIndex: number): void {
  store.insert([TX_ENDED_KIND, txId], [outcome, producerGroup, logIndex]);
  store.insert([TX_END_ORDER_KIND, logIndex], txId);
  const count = (store.getMeta(TX_ENDED_COUNT_META) ?? 0) + 1;
  if (count <= MAX_ENDED_TRANSACTIONS) {
    store.putMeta(TX_ENDED_COUNT_META, count);
    return;
  }
  const [oldest] = store.range([TX_END_ORDER_KIND], [TX_END_ORDER_KIND, MAX_KEY_PART], 1);
  assert(oldest !== undefined && oldest.key[1] !== logIndex, 'an older end to forget');
  store.remove(oldest.key);
  store.remove([TX_ENDED_KIND, oldest.value as string]);
}

function listHalfMessages(store: BrokerStore, txId: string): ProduceMessage[] {
  return store.range([TX_MESSAGE_KIND, txId], [TX_MESSAGE_KIND, txId, MAX_KEY_PART], LIMITS.maxMessagesPerProduce).map(({ value }) => value as ProduceMessage);
}

function dueKey(nextCheckAtMs: number, txId: string): Key {
  return [TX_DUE_KIND, nextCheckAtMs, txId];
}

/** The commit carries the transaction's messages: the same ones, in the order they were stored. */
function sameMessages(carried: readonly ProduceMessage[], half: readonly ProduceMessage[]): boolean {
  return carried.length === half.length && carried.every((m, i) => {
    const h = half[i]!;
    return m.msgId === h.msgId && m.topic === h.topic && m.queueId === h.queueId && m.body.byteLength === h.body.byteLength;
  });
}

// --- snapshot checks (a payload is input from disk or the network) ---------------------------

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
const isString = (value: unknown): value is string => typeof value === 'string' && value.length >= 1;

function openValueProblem(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length !== 8) return 'is not [producerGroup, producerId, storedAtMs, checks, nextCheckAtMs, messages, bodyBytes, topics]';
  const [group, producerId, storedAtMs, checks, nextCheckAtMs, messages, bodyBytes, topics] = value as unknown[];
  if (!isString(group) || !isString(producerId)) return 'has no producer group or producer';
  if (!isCount(storedAtMs) || !isCount(checks) || !isCount(nextCheckAtMs) || !isCount(messages) || !isCount(bodyBytes)) return 'has a bad count or time';
  if (messages < 1 || messages > LIMITS.maxMessagesPerProduce || bodyBytes > LIMITS.maxProduceBodyBytes) return 'holds more than one commit carries';
  return Array.isArray(topics) && topics.length >= 1 && topics.every(isString) ? undefined : 'has no topics';
}

function endedValueProblem(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length !== 3) return 'is not [outcome, producerGroup, endLogIndex]';
  const [outcome, group, logIndex] = value as unknown[];
  return (outcome === 'commit' || outcome === 'rollback') && isString(group) && isCount(logIndex) && logIndex >= 1 ? undefined : 'has a bad outcome, group or log index';
}

/** What is wrong with one transaction record's shape, if anything (undefined: not one of ours too). */
export function txRecordProblem(key: Key, value: unknown): string | undefined {
  switch (key[0]) {
    case TX_KIND:
      return key.length === 2 && isString(key[1]) ? openValueProblem(value) : 'has a bad key';
    case TX_MESSAGE_KIND: {
      if (key.length !== 4 || !isString(key[1]) || !isCount(key[2]) || !isCount(key[3])) return 'has a bad key';
      const problem = carriedMessageProblem(value);
      if (problem !== undefined) return `is not a message: ${problem}`;
      return (value as ProduceMessage).deliverAtMs === undefined ? undefined : 'is a delayed half message';
    }
    case TX_DUE_KIND:
      return key.length === 3 && isCount(key[1]) && isString(key[2]) && value === 1 ? undefined : 'is not a due mark';
    case TX_ENDED_KIND:
      return key.length === 2 && isString(key[1]) ? endedValueProblem(value) : 'has a bad key';
    case TX_END_ORDER_KIND:
      return key.length === 2 && isCount(key[1]) && isString(value) ? undefined : 'is not an end order record';
    default:
      return 'is not a transaction record';
  }
}

/**
 * Relations between the transaction records of a snapshot: every half message belongs to an
 * open transaction that counts it and names a queue that exists, every open one has its due
 * mark, ends and their order agree, and the counts match. The problem, or undefined.
 */
export function txRelationProblem(of: (kind: string) => readonly { key: Key; value: unknown }[], queueKeys: ReadonlySet<string>, meta: ReadonlyMap<string, number>, index: number): string | undefined {
  const open = new Map(of(TX_KIND).map(({ key, value }) => [key[1] as string, decodeOpen(value)]));
  const held = new Map<string, number>();
  for (const { key, value } of of(TX_MESSAGE_KIND)) {
    const txId = key[1] as string;
    const { topic, queueId } = value as ProduceMessage;
    if (!open.has(txId)) return `half message of ${txId} belongs to no open transaction`;
    if (!queueKeys.has(queueKey(topic, queueId))) return `half message of ${txId} for ${topic}/${queueId} has no queue`;
    if ((key[2] as number) > index) return `half message of ${txId} is from past the snapshot's index`;
    held.set(txId, (held.get(txId) ?? 0) + 1);
  }
  const due = new Set(of(TX_DUE_KIND).map(({ key }) => `${key[2] as string}\u0000${key[1] as number}`));
  for (const [txId, record] of open) {
    if (held.get(txId) !== record.messages) return `transaction ${txId} counts ${record.messages} messages but holds ${held.get(txId) ?? 0}`;
    if (!due.has(`${txId}\u0000${record.nextCheckAtMs}`)) return `transaction ${txId} lacks its due mark`;
  }
  if (due.size !== open.size) return 'due marks name transactions that are not open';
  const ended = of(TX_ENDED_KIND);
  const order = new Map(of(TX_END_ORDER_KIND).map(({ key, value }) => [key[1] as number, value as string]));
  for (const { key, value } of ended) {
    if (open.has(key[1] as string)) return `transaction ${String(key[1])} is both open and ended`;
    if (order.get((value as unknown[])[2] as number) !== key[1]) return `ended transaction ${String(key[1])} is missing from the end order`;
  }
  if (order.size !== ended.length || (meta.get(TX_ENDED_COUNT_META) ?? 0) !== ended.length) return 'ended transaction counts disagree';
  if ((meta.get(TX_OPEN_COUNT_META) ?? 0) !== open.size) return 'open transaction counts disagree';
  return undefined;
}
