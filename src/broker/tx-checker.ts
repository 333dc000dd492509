// The leader's transaction check service (RocketMQ's TransactionalMessageCheckService), driven
// from replicated state: every CHECK_SCAN_INTERVAL_MS the leader reads the open transactions
// whose next check is due by its clock (transactions.ts keeps them in due order). One that has
// had transaction.maxChecks checks is rolled back (a txEnd with source maxChecks, logged as a
// warning). The others are counted first — a txChecked command carries each one's new count
// and next due time (now + transaction.checkIntervalMs) — and once that commits, offered to a
// live producer of the group (tx-check-board.ts), which answers with a txEnd of its own. A
// check that finds no live producer still counts, as the issue asks: the count and due time
// are in the log, so a new leader goes on where the old one stopped.
//
// One round in flight at a time, so the leader never counts a check twice by itself; a new
// leader repeating an old leader's proposal is counted once (apply checks the count).
import type { Logger } from 'pino';
import type { RaftNode } from '../node/raft-node.js';
import { LIMITS, type TxSummary } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { type BrokerCommand, encodeCommand } from './commands.js';
import type { ApplyResult, BrokerStateMachine } from './state-machine.js';
import type { TxCheckBoard } from './tx-check-board.js';

export interface TransactionSettings {
  /** The first check of a transaction comes this long after its first half message was stored. */
  readonly checkAfterMs: number;
  readonly checkIntervalMs: number;
  /** Checks before the leader rolls the transaction back. */
  readonly maxChecks: number;
}

/** How often the leader looks for due checks: a check is late by at most about this. */
export const CHECK_SCAN_INTERVAL_MS = 200;
/** Transactions one round looks at: one txChecked command's bound. */
const MAX_DUE_PER_ROUND = LIMITS.maxTxChecksPerPoll;

export class TransactionChecker {
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private closed = false;
  private readonly warnings: RateLimitedLog;

  constructor(
    private readonly node: RaftNode<ApplyResult>,
    private readonly state: BrokerStateMachine,
    private readonly board: TxCheckBoard,
    private readonly settings: TransactionSettings,
    private readonly logger: Logger,
    /** The leader's clock (epoch ms), what the commands carry; a test may fix it. */
    private readonly nowMs: () => number = Date.now,
  ) {
    assert(settings.maxChecks >= 1 && settings.maxChecks <= LIMITS.maxTransactionChecks, 'maxChecks within the limits table');
    assert(settings.checkIntervalMs >= 1 && settings.checkAfterMs >= 1, 'check times are positive');
    this.warnings = new RateLimitedLog(logger, 10_000);
  }

  start(): void {
    assert(this.timer === null, 'the check service starts once');
    this.timer = setInterval(() => this.scan(), CHECK_SCAN_INTERVAL_MS);
  }

  stop(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.warnings.flush();
  }

  /** One round: on the leader, with no round of its own in flight, roll back or count what is due. */
  scan(): void {
    if (this.closed || this.inFlight || this.node.installing() || this.node.leadership().role !== 'leader') return;
    const timestampMs = this.nowMs();
    const due = this.state.dueTransactions(timestampMs, MAX_DUE_PER_ROUND);
    if (due.length === 0) return;
    const exhausted = due.filter((tx) => tx.checks >= this.settings.maxChecks);
    const toCheck = due.filter((tx) => tx.checks < this.settings.maxChecks);
    assert(exhausted.length + toCheck.length === due.length, 'every due transaction is rolled back or checked');
    this.inFlight = true;
    const rounds = [...exhausted.map((tx) => this.rollBack(tx, timestampMs)), ...(toCheck.length === 0 ? [] : [this.check(toCheck, timestampMs)])];
    void Promise.allSettled(rounds).then(() => {
      this.inFlight = false;
    });
  }

  private async rollBack(tx: TxSummary, timestampMs: number): Promise<void> {
    const command: BrokerCommand = { kind: 'txEnd', timestampMs, txId: tx.txId, outcome: 'rollback', source: 'maxChecks', messages: [] };
    try {
      const result = await this.propose(command);
      assert(result?.kind === 'txEnd', 'a txEnd command yields a txEnd result');
      if ('outcome' in result && !result.duplicate) {
        this.logger.warn({ txId: tx.txId, producerGroup: tx.producerGroup, checks: tx.checks, messages: tx.messages, topics: tx.topics }, `transaction rolled back: no producer of its group committed or rolled it back in ${tx.checks} check-backs (transaction.maxChecks)`);
      }
    } catch (error) {
      this.warnings.warn('txRollback', { err: error, txId: tx.txId }, 'transaction past maxChecks not rolled back yet; the next round proposes it again');
    }
  }

  private async check(due: readonly TxSummary[], timestampMs: number): Promise<void> {
    const nextCheckAtMs = timestampMs + this.settings.checkIntervalMs;
    const command: BrokerCommand = { kind: 'txChecked', timestampMs, checks: due.map((tx) => ({ txId: tx.txId, checks: tx.checks + 1, nextCheckAtMs })) };
    try {
      const result = await this.propose(command);
      assert(result?.kind === 'txChecked', 'a txChecked command yields a txChecked result');
    } catch (error) {
      this.warnings.warn('txChecked', { err: error, transactions: due.length }, 'check-backs not counted yet; the next round proposes them again');
      return;
    }
    const now = performance.now();
    for (const tx of due) {
      if (this.board.isLive(tx.producerGroup, now)) this.board.offer(tx.producerGroup, tx.txId, now);
      else this.logger.debug({ txId: tx.txId, producerGroup: tx.producerGroup, checks: tx.checks + 1 }, 'check-back found no live producer of the group; it counts, and is retried after transaction.checkIntervalMs');
    }
  }

  private async propose(command: BrokerCommand): Promise<ApplyResult | undefined> {
    return (await this.node.propose(encodeCommand(command), 'majority')).result;
  }
}
