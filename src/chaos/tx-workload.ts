// The transactional workload (`chaos --workload tx`): transactional producers (src/client's
// TransactionProducer) each store 1–3 half messages, then commit, roll back, or die before
// ending (the transaction is left to the check-back), while a responder of the same producer
// group answers check-backs COMMIT, ROLLBACK or UNKNOWN (so some reach transaction.maxChecks and
// the leader rolls them back), under the run's faults; the run's per-queue pollers read along.
// Every half-message store is a `txsend` operation, every end asked a `txend` (`by` producer
// or check). After the faults the workload waits until no transaction is open, then the
// queues are drained; the checker judges tx-committed-lost, tx-rolled-back-visible,
// tx-partial and tx-visible-early.
import { setTimeout as sleep } from 'node:timers/promises';
import type { TxEndValue, TxMessage, TxSendValue } from '../checker/index.js';
import { hashKey } from '../client/producer.js';
import { type TransactionState, TransactionProducer } from '../client/transaction.js';
import type { TxCheck } from '../protocol/index.js';
import type { Rng } from '../sim/rng.js';
import type { PlantKind } from './plants.js';
import { isLmqError } from '../util/errors.js';
import { describeError, failedOutcome, queueName, type WorkloadContext } from './workload.js';

export interface TxSettings {
  readonly producerGroup: string;
  readonly producers: number;
  /** Half messages per transaction, drawn from 1 to this. */
  readonly messagesMax: number;
  /** Shares of a transaction's fate; what is left dies before ending. */
  readonly commitChance: number;
  readonly rollbackChance: number;
  /** Shares of a check-back answer; what is left answers UNKNOWN. */
  readonly checkCommitChance: number;
  readonly checkRollbackChance: number;
  /** Pause between one producer's transactions. */
  readonly pauseMs: number;
  /** After the faults: longest wait for every transaction to end. */
  readonly settleMaxMs: number;
}

export const DEFAULT_TX_SETTINGS: TxSettings = Object.freeze({
  producerGroup: 'chaos-tx',
  producers: 2,
  messagesMax: 3,
  commitChance: 0.45,
  rollbackChance: 0.35,
  checkCommitChance: 0.5,
  checkRollbackChance: 0.3,
  pauseMs: 20,
  settleMaxMs: 30_000,
});

/**
 * Short check-backs, so that dead producers' transactions are checked, answered and (past
 * maxChecks) rolled back within the run. The cluster's config must carry them (runner.ts).
 */
export const txCheckConfig = { checkAfterMs: 1_000, checkIntervalMs: 1_000, maxChecks: 5 };

export class TxWorkload {
  private readonly loops: Promise<void>[] = [];
  private responder: TransactionProducer | null = null;

  constructor(
    private readonly context: WorkloadContext,
    private readonly settings: TxSettings,
    private readonly rng: Rng,
    private readonly log: (line: string) => void,
    private readonly plant?: PlantKind,
  ) {}

  start(): void {
    this.responder = this.startResponder(this.rng.fork());
    for (let p = 0; p < this.settings.producers; p++) this.loops.push(this.runProducer(p, this.rng.fork()));
  }

  /** After the faults: the producers have stopped; waits (bounded) until no transaction is open. */
  async settle(): Promise<void> {
    await Promise.all(this.loops);
    const client = this.context.newClient();
    const deadline = performance.now() + this.settings.settleMaxMs;
    while (performance.now() < deadline) {
      try {
        const { transactions } = await client.call({ op: 'txList' });
        if (transactions.length === 0) return;
      } catch {
        // No leader for a moment: ask again.
      }
      await sleep(250);
    }
    this.log(`transactions were still open ${this.settings.settleMaxMs} ms after the faults; draining anyway`);
  }

  async stop(): Promise<void> {
    await this.responder?.stop();
  }

  /** One producer: transactions one after another, each committed, rolled back or abandoned. */
  private async runProducer(worker: number, rng: Rng): Promise<void> {
    const { settings, recorder } = this.context;
    const lane = `tx producer ${worker}`;
    const producer = new TransactionProducer(this.context.newClient(), { producerGroup: this.settings.producerGroup, timeoutMs: settings.opTimeoutMs });
    let process = recorder.newProcess(lane);
    for (let n = 0; !this.context.stopped() && !recorder.full; n++) {
      const tx = producer.beginTransaction();
      const keys = Array.from({ length: 1 + rng.int(this.settings.messagesMax) }, () => `k${rng.int(settings.keys)}`);
      const messages: TxMessage[] = keys.map((key, j) => ({ queue: queueName(settings.topic, hashKey(key) % settings.queues), body: `t${worker}-${n}-${j}` }));
      const sendValue: TxSendValue = { txId: tx.txId, messages };
      recorder.invokeTxSend(process, sendValue);
      try {
        for (const [j, key] of keys.entries()) await tx.send(settings.topic, { body: Buffer.from(messages[j]!.body), key }, 'byKey');
        recorder.txSendEnded('ok', process, sendValue);
      } catch (error) {
        // Some half messages may be stored: never `fail`. The transaction is left to the check-back.
        recorder.txSendEnded('info', process, sendValue, describeError(error));
        process = recorder.newProcess(lane);
        continue;
      }
      const fate = rng.next();
      const end = fate < this.settings.commitChance ? 'commit' : fate < this.settings.commitChance + this.settings.rollbackChance ? 'rollback' : null;
      if (end === null) {
        process = recorder.newProcess(lane); // died before ending: the check-back decides
      } else {
        const endValue: TxEndValue = { txId: tx.txId, end, by: 'producer' };
        recorder.invokeTxEnd(process, endValue);
        try {
          // The tx-rolled-back-visible plant: a rollback recorded as asked, a commit sent.
          await (end === 'commit' || this.plant === 'tx-rolled-back-visible' ? tx.commit() : tx.rollback());
          recorder.txEndEnded('ok', process, endValue);
        } catch (error) {
          // Ended the other way first (a check-back answer): this end did not happen.
          const outcome = isLmqError(error, 'LMQ_TX_ENDED') ? 'fail' : failedOutcome(error);
          recorder.txEndEnded(outcome, process, endValue, describeError(error));
          if (outcome === 'info') process = recorder.newProcess(lane);
        }
      }
      await sleep(this.settings.pauseMs);
    }
  }

  /** Answers the group's check-backs; each COMMIT or ROLLBACK answer is a `txend` by check. */
  private startResponder(rng: Rng): TransactionProducer {
    const { recorder } = this.context;
    const asked = new Map<string, { process: number; value: TxEndValue }>();
    const ended = (check: TxCheck, type: 'ok' | 'fail' | 'info', error?: string) => {
      const pending = asked.get(check.txId);
      if (pending === undefined) return;
      asked.delete(check.txId);
      recorder.txEndEnded(type, pending.process, pending.value, error);
    };
    const checker = (check: TxCheck): TransactionState => {
      const draw = rng.next();
      const state: TransactionState = draw < this.settings.checkCommitChance ? 'COMMIT' : draw < this.settings.checkCommitChance + this.settings.checkRollbackChance ? 'ROLLBACK' : 'UNKNOWN';
      if (state !== 'UNKNOWN') {
        const value: TxEndValue = { txId: check.txId, end: state === 'COMMIT' ? 'commit' : 'rollback', by: 'check' };
        const process = recorder.newProcess('tx responder');
        recorder.invokeTxEnd(process, value);
        asked.set(check.txId, { process, value });
      }
      return state;
    };
    const responder = new TransactionProducer(this.context.newClient(), {
      producerGroup: this.settings.producerGroup,
      timeoutMs: this.context.settings.opTimeoutMs,
      checkPollWaitMs: 500,
      transactionChecker: checker,
      onCheck: (check, state, outcome) => {
        if (state !== 'UNKNOWN') ended(check, outcome === (state === 'COMMIT' ? 'commit' : 'rollback') ? 'ok' : 'fail', outcome === null ? undefined : `ended ${outcome}`);
      },
      onError: (error, check) => {
        if (check !== undefined) ended(check, isLmqError(error, 'LMQ_TX_ENDED') ? 'fail' : failedOutcome(error), describeError(error));
      },
    });
    responder.start();
    return responder;
  }
}
