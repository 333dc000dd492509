// The client port's transaction operations (src/protocol/requests.ts txHalf, txEnd, txChecks,
// txList), on the leader: half sends and ends become replicated commands (transactions.ts
// decides them at apply), and check-backs go out over the producers' txChecks long polls
// (tx-check-board.ts; the leader's check service, tx-checker.ts, offers them).
//
// Every command goes through a majority (all, under quorum `all`) whatever the quorum mode:
// a transaction's answer is its apply result (a repeat is recognized, an end decided once),
// which `leader` quorum would not wait for — as the orderly consumers' locks do.
import type { QuorumMode } from '../config/config.js';
import type { RaftNode } from '../node/raft-node.js';
import { LIMITS, type RequestOf, type ResponseOf, type TxCheck } from '../protocol/index.js';
import type { AclUser } from '../security/acl.js';
import { assert } from '../util/assert.js';
import { LmqError, NOT_SENT } from '../util/errors.js';
import { type BrokerCommand, encodeCommand } from './commands.js';
import type { ApplyResult, BrokerStateMachine } from './state-machine.js';
import type { TxCheckBoard } from './tx-check-board.js';
import type { OpenTransaction } from './transactions.js';

export interface TransactionServiceOptions {
  readonly quorum: QuorumMode;
  /** transaction.checkAfterMs: resolved into each txHalf, so apply needs no config. */
  readonly checkAfterMs: number;
  /** transaction.checkIntervalMs: a check offered longer ago than this is stale (the next round offers it again). */
  readonly checkIntervalMs: number;
  readonly maxPollWaitMs: number;
  /** How long an end waits for a new leader to apply what earlier leaders committed. */
  readonly leaderWaitMs: number;
  readonly board: TxCheckBoard;
}

export interface TransactionContext {
  reserveReplyBytes(bytes: number): Promise<void>;
}

/** Times an end is rebuilt when half sends keep landing between the read and the commit. */
const MAX_STALE_ENDS = 3;
/** Body bytes one txChecks reply carries, but for its first transaction (at most one produce's). */
const MAX_CHECK_REPLY_BODY_BYTES = LIMITS.maxPullBytes;
const APPLIED_POLL_MS = 20;

export class TransactionService {
  constructor(
    private readonly node: RaftNode<ApplyResult>,
    private readonly state: BrokerStateMachine,
    private readonly options: TransactionServiceOptions,
    /** Whether the user may publish to the topic (null user: no ACL, everyone may). */
    private readonly mayPublish: (user: AclUser | null, topic: string) => boolean,
  ) {}

  async half(request: RequestOf<'txHalf'>, producerId: string): Promise<ResponseOf<'txHalf'>> {
    for (const { topic } of request.messages) {
      if (this.state.topic(topic) === undefined) throw new LmqError('LMQ_TOPIC_NOT_FOUND', `topic "${topic}" does not exist; create it with: ledgermq topic create ${topic} --queues N`, { topic });
    }
    const timestampMs = Date.now();
    const { producerGroup, txId, messages } = request;
    const result = await this.write({ kind: 'txHalf', timestampMs, producerGroup, producerId, txId, checkAtMs: timestampMs + this.options.checkAfterMs, messages });
    assert(result?.kind === 'txHalf', 'a txHalf command yields a txHalf result');
    if ('error' in result) throw new LmqError(result.error, result.message);
    return { txId: result.txId, messages: result.messages, duplicate: result.duplicate };
  }

  /** Ends the transaction, or answers how it ended (a repeat, or a check-back answer that came first). */
  async end(request: RequestOf<'txEnd'>, user: AclUser | null): Promise<ResponseOf<'txEnd'>> {
    const { txId, producerGroup, outcome, source } = request;
    for (let attempt = 1; ; attempt++) {
      const ended = this.state.transactionOutcome(txId);
      if (ended !== undefined) {
        if (ended.producerGroup !== producerGroup) throw otherGroup(txId, ended.producerGroup, producerGroup);
        return { outcome: ended.outcome, duplicate: true, placed: [] };
      }
      const open = await this.findOpen(txId);
      if (open === undefined) continue; // it ended meanwhile: answer how
      if (open.producerGroup !== producerGroup) throw otherGroup(txId, open.producerGroup, producerGroup);
      const forbidden = open.topics.find((topic) => !this.mayPublish(user, topic));
      if (forbidden !== undefined) throw new LmqError('LMQ_FORBIDDEN', `user "${user?.accessKey ?? ''}" may not end transaction ${txId}: it lacks PUB on topic "${forbidden}"`, { topic: forbidden, permission: 'PUB' });
      const messages = outcome === 'commit' ? [...open.halfMessages] : [];
      const result = await this.write({ kind: 'txEnd', timestampMs: Date.now(), txId, outcome, source, messages });
      assert(result?.kind === 'txEnd', 'a txEnd command yields a txEnd result');
      if ('stale' in result) {
        if (attempt < MAX_STALE_ENDS) continue;
        throw new LmqError('LMQ_UNAVAILABLE', `transaction ${txId} kept changing while it was being ended (half sends still arriving); retry`, NOT_SENT);
      }
      if ('error' in result) throw new LmqError(result.error, result.message);
      return { outcome: result.outcome, duplicate: result.duplicate, placed: result.placed };
    }
  }

  /** A producer's long poll: the group's checks offered by the check service, with their half messages. */
  async checks(request: RequestOf<'txChecks'>, context: TransactionContext, user: AclUser | null): Promise<ResponseOf<'txChecks'>> {
    const { board } = this.options;
    const { producerGroup, clientId } = request;
    await board.hold(producerGroup, clientId, Math.min(request.waitMs, this.options.maxPollWaitMs), () => performance.now());
    const txIds = board.take(producerGroup, LIMITS.maxTxChecksPerPoll, performance.now() - this.options.checkIntervalMs);
    if (txIds.length === 0) return { checks: [] };
    // Reserved before the reply is built: the first check may carry one produce's bodies.
    await context.reserveReplyBytes(Math.max(MAX_CHECK_REPLY_BODY_BYTES, LIMITS.maxProduceBodyBytes));
    const checks: TxCheck[] = [];
    let bytes = 0;
    for (const txId of txIds) {
      const open = this.state.openTransaction(txId);
      if (open === undefined || !open.topics.every((topic) => this.mayPublish(user, topic))) continue;
      if (checks.length > 0 && bytes + open.bodyBytes > MAX_CHECK_REPLY_BODY_BYTES) {
        board.offer(producerGroup, txId, performance.now()); // the group's next poll takes it
        continue;
      }
      bytes += open.bodyBytes;
      const { bodyBytes: _bytes, halfMessages, ...summary } = open;
      checks.push({ ...summary, halfMessages: halfMessages.map(({ msgId, topic, queueId, body, tag, keys, properties }) => ({ msgId, topic, queueId, body, ...(tag === undefined ? {} : { tag }), ...(keys === undefined ? {} : { keys }), ...(properties === undefined ? {} : { properties }) })) });
    }
    return { checks };
  }

  list(user: AclUser | null): ResponseOf<'txList'> {
    return { transactions: this.state.transactions().filter((tx) => tx.topics.every((topic) => this.mayPublish(user, topic))) };
  }

  /**
   * The open transaction, or a refusal: unknown to a leader that has applied an entry of its own
   * term (so everything earlier leaders committed) is really unknown; before that, retriable.
   * undefined: it has ended meanwhile.
   */
  private async findOpen(txId: string): Promise<OpenTransaction | undefined> {
    const deadlineMs = performance.now() + this.options.leaderWaitMs;
    for (;;) {
      const open = this.state.openTransaction(txId);
      if (open !== undefined) return open;
      const caughtUp = this.node.termAt(this.state.appliedIndex()) === this.node.logContext().term;
      if (caughtUp || this.state.transactionOutcome(txId) !== undefined) break;
      if (performance.now() >= deadlineMs) throw new LmqError('LMQ_UNAVAILABLE', `cannot end transaction ${txId} yet: this leader has not applied what earlier leaders committed; retry`, NOT_SENT);
      await new Promise((resolve) => setTimeout(resolve, APPLIED_POLL_MS));
    }
    if (this.state.transactionOutcome(txId) !== undefined) return undefined;
    throw new LmqError('LMQ_BAD_INPUT', `no open transaction ${txId}: it was never begun (no half message stored), or it ended so long ago that it is forgotten`, { txId });
  }

  private async write(command: BrokerCommand): Promise<ApplyResult | undefined> {
    const mode = this.options.quorum === 'all' ? 'all' : 'majority';
    return (await this.node.propose(encodeCommand(command), mode)).result;
  }
}

function otherGroup(txId: string, actual: string, named: string): LmqError {
  return new LmqError('LMQ_BAD_INPUT', `transaction ${txId} belongs to producer group ${actual}, not ${named}`, { txId });
}
