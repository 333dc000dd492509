// The broker's client-port service: validates requests, turns writes into replicated
// commands proposed through the Raft node, and answers reads from the state machine on the
// leader (a follower redirects; a node never serves an entry that is not committed, because
// the state machine only ever sees committed entries).
import type { QuorumMode } from '../config/config.js';
import type { RaftNode } from '../node/raft-node.js';
import { assert } from '../util/assert.js';
import { LmqError, isLmqError, NOT_SENT } from '../util/errors.js';
import { formatReceipt, type GroupQueueLag as ResponseGroupQueueLag, LIMITS, type OpName, parseReceipt, type ProduceMessageWire, type Request, type RequestOf, type ResponseOf, UNSEQUENCED } from '../protocol/index.js';
import { type BrokerCommand, DLQ_TOPIC_PREFIX, encodeCommand, encodeProduce, encodeProduceWith, type ProduceCommand, type ProduceMessage, topicNameProblem } from './commands.js';
import { ProduceBatcher } from './produce-batcher.js';
import { isDelayed } from './placement.js';
import { checkRetryGroup, dlqResendCommand, resolveDeliverAtMs, type RetrySettings, sendBackCommand } from './retry.js';
import { LeaderSequences } from './leader-sequences.js';
import type { ApplyResult, BrokerStateMachine, GroupQueueLag, ProduceApplyResult } from './state-machine.js';
import { GroupMembership } from './membership.js';
import { receiveCommand } from './simple-consumer.js';
import { parseRequest } from './requests.js';
import type { LockApplyResult, LockCommand } from './queue-locks.js';
import type { BrokerAccess } from './access.js';
import { TransactionService, type TransactionServiceOptions } from './tx-service.js';
import type { AclUser } from '../security/acl.js';
import type { PresentedCredentials } from '../security/signature.js';
import { FilterCache, type MessageFilter } from '../filter/index.js';
import type { FilteredRead } from './filtered-reads.js';
import { BrokerStats } from './stats.js';
import { routeChangedMessage } from './topic-growth.js';
import type { Leadership } from './leadership.js';
import type { Placement } from './store.js';

export interface ServiceOptions {
  readonly quorum: QuorumMode;
  /** Longest a pull may wait for new messages (long polling). */
  readonly maxPollWaitMs: number;
  /** Pulls waiting at once; more are answered at once with what there is. */
  readonly maxWaitingPulls: number;
  /**
   * Longest a request waits on a node that knows no leader (mid-election) before it is
   * answered LMQ_NOT_LEADER; set from the election timeout so one election fits.
   */
  readonly leaderWaitMs: number;
  /** delay.levels and consumer.maxReconsumeTimes, resolved here into the commands. */
  readonly retry: RetrySettings;
  /** transaction.* and the leader's check-back board (tx-service.ts). */
  readonly transaction: Pick<TransactionServiceOptions, 'checkAfterMs' | 'checkIntervalMs' | 'board'>;
  /** topic.maxReorderWaitMs: how long keys whose queue a growth changed wait, at most. */
  readonly maxReorderWaitMs: number;
  /** Leader transfers and the preferred leader (leadership.ts). */
  readonly leadership: Leadership;
}

/**
 * The most body bytes a pull's reply can carry: maxBytes, except that the first message is
 * returned even when larger (src/broker/state-machine.ts readFrom), up to the largest body one
 * produce can store. Metadata is not counted: the frame limit bounds the encoded reply.
 */
function pullReplyBoundBytes(maxBytes: number): number {
  return Math.max(maxBytes, LIMITS.maxProduceBodyBytes);
}

/**
 * What a request may ask of the connection it came on, before building its reply (the client
 * port's per-connection reply budget, RpcContext.reserveReplyBytes). Requests that do not come
 * over a connection (tests) reserve nothing.
 */
export interface RequestContext {
  reserveReplyBytes(bytes: number): Promise<void>;
  /** What the request carried to prove its sender (checked against the ACL, if any). */
  readonly credentials?: PresentedCredentials;
  /** The client's address ('' when unknown), for the ACL's allowedAddresses. */
  readonly remoteAddress: string;
}

function parsedReceipt(receipt: string): NonNullable<ReturnType<typeof parseReceipt>> {
  const ref = parseReceipt(receipt);
  assert(ref !== undefined, 'the request check parsed every receipt');
  return ref;
}

/** Compiled subscription filters kept (each consumer sends its own with every pull). */
const MAX_CACHED_FILTERS = 1024;

const NO_CONNECTION: RequestContext = Object.freeze({ reserveReplyBytes: () => Promise.resolve(), remoteAddress: '' });

export const DEFAULT_SERVICE_OPTIONS: Omit<ServiceOptions, 'quorum' | 'leaderWaitMs' | 'retry' | 'transaction' | 'leadership'> = Object.freeze({ maxPollWaitMs: 30_000, maxWaitingPulls: 10_000, maxReorderWaitMs: 60_000 });

/**
 * A group's row as `groups` answers it: lagSeconds is the age of the oldest unconsumed message
 * on this leader's clock. A store time ahead of the clock (a leader whose clock ran ahead stored
 * it) gives no age that means anything: unknown, and why, rather than a negative number.
 */
export function withLagSeconds(row: GroupQueueLag, oldestStoreTimestampMs: number | null, nowMs: number): ResponseGroupQueueLag {
  if (oldestStoreTimestampMs === null) return { ...row, lagSeconds: 0 };
  const ageMs = nowMs - oldestStoreTimestampMs;
  if (ageMs < 0) return { ...row, lagSeconds: null, lagSecondsUnknown: `the oldest unconsumed message's store time is ${-ageMs} ms ahead of the leader's clock` };
  return { ...row, lagSeconds: ageMs / 1000 };
}

export class BrokerService {
  /** Ends each waiting long poll at once (with what it has), e.g. on shutdown. */
  private readonly waitingPulls = new Set<() => void>();
  private readonly leaderSequences = new LeaderSequences();
  private closing = false;
  private readonly membership = new GroupMembership();
  private readonly transactions: TransactionService;
  private readonly filters = new FilterCache(MAX_CACHED_FILTERS);
  /** Produces that arrive while the last batch of them is out go as one entry (produce-batcher.ts). */
  private readonly produces: ProduceBatcher;
  /** Produce costs, bytes in and messages out as this node served them (the console and /metrics). */
  readonly stats: BrokerStats;

  constructor(
    private readonly node: RaftNode<ApplyResult>,
    private readonly state: BrokerStateMachine,
    private readonly options: ServiceOptions,
    /** null: no ACL (security.aclFile unset), every request is served as before. */
    private readonly access: BrokerAccess | null = null,
  ) {
    this.stats = new BrokerStats(node.id);
    this.produces = new ProduceBatcher(async (data, command) => {
      state.rememberProposal(data, command);
      return (await node.propose(data, options.quorum)).result;
    });
    const { quorum, maxPollWaitMs, leaderWaitMs, transaction } = options;
    const mayPublish = (user: AclUser | null, topic: string) => user === null || this.access!.mayPublish(user, topic);
    this.transactions = new TransactionService(node, state, { quorum, maxPollWaitMs, leaderWaitMs, ...transaction }, mayPublish);
  }

  /**
   * The RPC handler: one request in, one response out; LmqErrors travel back with their codes.
   * With an ACL the sender is authenticated and authorized first, on this node, before the
   * body is checked or the request waits for or is redirected to the leader.
   */
  async handle(body: unknown, context: RequestContext = NO_CONNECTION): Promise<unknown> {
    const user = this.access === null ? null : this.access.authenticate(body, context.credentials, context.remoteAddress);
    const request = parseRequest(body);
    if (user !== null) this.access!.authorize(user, request);
    // A caught-up leader (nearly every request's case) goes on without a turn of the event loop's microtasks.
    if (request.op !== 'status' && !this.servesAsLeader()) await this.requireLeader();
    // The one place the request's op picks its handler: the table's type pairs each op's
    // request with its response, which a switch over the union could not check.
    const handler = this.handlers[request.op] as (request: Request, context: RequestContext, user: AclUser | null) => Promise<unknown> | unknown;
    return handler(request, context, user);
  }

  /** One handler per operation; every one but status runs on the leader only. `user` is null without an ACL. */
  private readonly handlers: {
    readonly [Op in OpName]: (request: RequestOf<Op>, context: RequestContext, user: AclUser | null) => Promise<ResponseOf<Op>> | ResponseOf<Op>;
  } = {
    status: () => this.node.status(),
    createTopic: (request) => this.createTopic(request.topic, request.queues),
    topics: () => ({ topics: this.state.topics().map((t) => ({ ...t, queueOffsets: this.queueOffsetRanges(t.topic, t.queues) })) }),
    route: (request) => this.route(request.topic),
    growTopic: (request) => this.growTopic(request.topic, request.queues),
    // Under an ACL a producer's dedup state is its user's: another user who learned the
    // producerId (msgIds show it) cannot pre-send its next seqs and have its sends dropped as
    // duplicates. Access keys hold no "/", so the scoped id is unambiguous.
    produce: async (request, _context, user) => {
      const startedMs = performance.now();
      const reply = await this.produce(user === null ? request.producerId : `${user.accessKey}/${request.producerId}`, request.seq, request.messages, request.routedQueues, request.encoded);
      this.stats.produced(request.messages, performance.now() - startedMs);
      return reply;
    },
    pull: async (request, context) => {
      const reply = await this.pull(request, context);
      this.stats.delivered(request.topic, reply.messages.length);
      return reply;
    },
    commitOffsets: (request) => this.writeOffsets({ kind: 'commitOffsets', group: request.group, offsets: request.offsets }),
    heartbeat: (request) => this.membership.heartbeat(request.group, request.topic, request.consumerId, this.topicOrThrow(request.topic).queues, performance.now()),
    leaveGroup: (request) => {
      this.membership.leave(request.group, request.topic, request.consumerId);
      return { ok: true };
    },
    // Dead letters show under dlq only, never as rows (CONTRACT.md); retry queues are rows.
    groups: () => ({
      groups: this.state.groups().map((group) => ({
        group,
        queues: this.state.groupLag(group).filter((row) => !row.topic.startsWith(DLQ_TOPIC_PREFIX)).map((row) => withLagSeconds(row, this.oldestUnconsumedMs(row), Date.now())),
        dlq: this.state.deadLetterCounts(group),
        members: this.membership.members(group, (topic) => this.state.topic(topic)?.queues, performance.now()),
      })),
    }),
    queryOffsets: (request) => ({ offsets: request.queues.map((q) => this.queueOffsets(request.group, q.topic, q.queueId, request.timestampMs)) }),
    resetOffsets: (request) => this.writeOffsets({ kind: 'resetOffsets', group: request.group, offsets: request.offsets }),
    lookupByKey: (request) => ({ messages: this.state.lookupByKey(request.topic, request.key, request.max) }),
    lookupByMsgId: (request, _context, user) => {
      const message = this.state.lookupByMsgId(request.msgId);
      const visible = message !== undefined && (user === null || this.access!.mayRead(user, message.topic));
      return { messages: visible ? [message] : [] };
    },
    sendBack: (request) => this.sendBack(request),
    dlqList: (request) => this.state.deadLetters(request.group, request.fromOffset, request.max),
    dlqResend: (request) => this.dlqResend(request),
    // Under an ACL a lock holder is scoped to its user, as a producer is: another user cannot
    // release or renew a lock by naming the same clientId.
    lockQueues: async (request, _context, user) => {
      const clientId = user === null ? request.clientId : `${user.accessKey}/${request.clientId}`;
      const result = await this.writeLocks({ kind: 'lockQueues', timestampMs: Date.now(), group: request.group, clientId, queues: request.queues, leaseMs: request.leaseMs });
      assert(result.kind === 'lockQueues' && 'locked' in result, 'a lockQueues command yields its grants');
      return { locked: result.locked };
    },
    unlockQueues: async (request, _context, user) => {
      const clientId = user === null ? request.clientId : `${user.accessKey}/${request.clientId}`;
      await this.writeLocks({ kind: 'unlockQueues', group: request.group, clientId, queues: request.queues });
      return { ok: true };
    },
    // The receiver is scoped to its user under an ACL, as a lock holder is (it is only recorded).
    receive: async (request, context, user) => {
      const reply = await this.receive(request, context, user === null ? request.clientId : `${user.accessKey}/${request.clientId}`);
      for (const m of reply.messages) this.stats.delivered(m.topic, 1);
      return reply;
    },
    ack: (request) => this.ack(request),
    changeInvisibleDuration: (request) => this.changeInvisibleDuration(request),
    // Transactions (tx-service.ts); the producer is scoped to its user as produce's is.
    txHalf: (request, _context, user) => this.transactions.half(request, user === null ? request.producerId : `${user.accessKey}/${request.producerId}`),
    txEnd: (request, _context, user) => this.transactions.end(request, user),
    txChecks: (request, context, user) => this.transactions.checks(request, context, user),
    txList: (_request, _context, user) => this.transactions.list(user),
    brokerStats: () => this.stats.reply(),
    transferLeader: (request) => this.options.leadership.transfer(request.to, request.waitMs),
    setPreferredLeader: async (request) => {
      this.options.leadership.checkPreferredLeader(request.node);
      await this.write({ kind: 'setPreferredLeader', node: request.node });
      return { preferredLeader: this.options.leadership.preferredLeader() };
    },
  };

  /** Store time of a group row's oldest unconsumed message (at its committed offset); null without lag. */
  oldestUnconsumedMs(row: GroupQueueLag): number | null {
    return row.lag === 0 ? null : this.state.storeTimestampAt(row.topic, row.queueId, row.committedOffset);
  }

  // --- simple consumer (src/broker/simple-consumer.ts) -------------------------------------------

  /**
   * Long polling without a proposal per look: while a receive would find nothing (no expired
   * delivery, no new offset: a cheap read of the leader's state), it waits for a commit or for
   * the earliest in-flight message to become visible, up to waitMs; then it proposes once. The
   * reply budget is reserved before the proposal, so what apply hands out is always answered.
   */
  private async receive(request: RequestOf<'receive'>, context: RequestContext, clientId: string): Promise<ResponseOf<'receive'>> {
    const { group, topic } = request;
    checkRetryGroup(group);
    this.topicOrThrow(topic);
    const ready = () => this.state.receivable(group, topic, Date.now(), request.fifo === true);
    const deadlineMs = performance.now() + Math.min(request.waitMs, this.options.maxPollWaitMs);
    while (!ready() && !this.closing && this.waitingPulls.size < this.options.maxWaitingPulls) {
      const leftMs = deadlineMs - performance.now();
      if (leftMs <= 0) break;
      const visibleAtMs = this.state.nextVisibleAtMs(group, topic);
      await this.waitForMessages(ready, visibleAtMs === undefined ? leftMs : Math.min(leftMs, Math.max(1, visibleAtMs - Date.now())));
    }
    if (!ready()) return { messages: [] };
    await context.reserveReplyBytes(LIMITS.maxReceiveReplyBytes);
    const result = await this.write(receiveCommand(this.state, { ...request, clientId }, this.options.retry, Date.now()));
    assert(result?.kind === 'receive', 'a receive command yields a receive result');
    if ('error' in result) throw new LmqError(result.error, result.message);
    // Object.assign, not an object spread: V8 spreads these objects ~20× slower (see reads.ts storedMessage).
    return { messages: result.received.map(({ delivery, attempt, visibleAtMs, message }) => Object.assign({}, message, { receipt: formatReceipt(delivery), deliveryAttempt: attempt, invisibleUntilMs: visibleAtMs })) };
  }

  /** Not checked against this leader's topics: it may not have applied the receive yet, and apply decides. */
  private async ack(request: RequestOf<'ack'>): Promise<ResponseOf<'ack'>> {
    const receipts = request.receipts.map((receipt) => ({ ...parsedReceipt(receipt) }));
    const result = await this.write({ kind: 'ack', group: request.group, receipts });
    assert(result?.kind === 'ack' && 'acked' in result, 'an ack command yields an ack result');
    return { acked: result.acked, expired: result.expired.map((position) => request.receipts[position]!) };
  }

  private async changeInvisibleDuration(request: RequestOf<'changeInvisibleDuration'>): Promise<ResponseOf<'changeInvisibleDuration'>> {
    const receipt = parsedReceipt(request.receipt);
    const result = await this.write({ kind: 'changeInvisibleDuration', timestampMs: Date.now(), group: request.group, receipt: { ...receipt }, invisibleDurationMs: request.invisibleDurationMs });
    assert(result?.kind === 'changeInvisibleDuration', 'a changeInvisibleDuration command yields its result');
    if ('error' in result) throw new LmqError(result.error, result.message, { receipt: request.receipt });
    return { receipt: formatReceipt({ ...receipt, tag: result.tag }), invisibleUntilMs: result.visibleAtMs };
  }

  /** A failed delivery goes back as a retry or dead-letter copy built from the stored message (retry.ts). */
  private async sendBack(request: RequestOf<'sendBack'>): Promise<ResponseOf<'sendBack'>> {
    checkRetryGroup(request.group);
    const where = `${request.topic}/${request.queueId} offset ${request.offset}`;
    // The consumer read this message from the cluster, so a leader that does not know its topic
    // or offset yet has not applied what an earlier leader committed (a new leader learns the
    // commit index only by committing in its term): retriable, nothing was done.
    const notAppliedYet = () => new LmqError('LMQ_UNAVAILABLE', `cannot send back ${where} yet: this leader has not applied it; retry`, NOT_SENT);
    if (this.state.topic(request.topic) === undefined) throw notAppliedYet();
    this.queueOrThrow(request.topic, request.queueId);
    const { startOffset, messages } = this.state.readFrom(request.topic, request.queueId, request.offset, 1, LIMITS.maxPullBytes);
    const [stored] = messages;
    if (startOffset !== request.offset) throw new LmqError('LMQ_BAD_INPUT', `cannot send back ${where}: retention deleted it (the queue now starts at ${startOffset})`);
    if (stored === undefined) throw notAppliedYet();
    if (stored.msgId !== request.msgId) throw new LmqError('LMQ_BAD_INPUT', `cannot send back ${where}: it holds message ${stored.msgId}, not ${request.msgId}`);
    const result = await this.write(sendBackCommand(stored, request, this.options.retry, Date.now()));
    assert(result?.kind === 'sendBack', 'a sendBack command yields a sendBack result');
    if ('error' in result) throw new LmqError(result.error, result.message);
    return { target: result.target, reconsumeTimes: result.reconsumeTimes, deliverAtMs: result.deliverAtMs, duplicate: result.duplicate };
  }

  /** Re-delivers dead letters not yet resent, once each: apply skips any resent meanwhile. */
  private async dlqResend(request: RequestOf<'dlqResend'>): Promise<ResponseOf<'dlqResend'>> {
    checkRetryGroup(request.group);
    const pending = this.state.pendingDeadLetters(request.group, request.msgId, LIMITS.maxDeadLettersPerRequest, LIMITS.maxProduceBodyBytes);
    if (pending.length === 0) return { resent: 0 };
    const result = await this.write(dlqResendCommand(request.group, pending, Date.now()));
    assert(result?.kind === 'dlqResend', 'a dlqResend command yields a dlqResend result');
    return { resent: result.resent };
  }

  /**
   * Orderly consumers' queue locks (queue-locks.ts): replicated under majority whatever the
   * quorum mode, so a grant answered is a grant every later leader knows.
   */
  private async writeLocks(command: LockCommand): Promise<LockApplyResult> {
    for (const queue of command.queues) this.queueOrThrow(queue.topic, queue.queueId);
    const result = await this.write(command, 'majority');
    assert(result !== undefined && result.kind === command.kind, 'a lock command yields a lock result');
    if ('error' in result) throw new LmqError(result.error, result.message);
    return result as LockApplyResult;
  }

  /**
   * Commits or resets a group's offsets. A missing topic or queue is an error, never a silent
   * `ok` with nothing stored: checked here for a quick answer, and decided at apply time.
   */
  private async writeOffsets(command: Extract<BrokerCommand, { kind: 'commitOffsets' | 'resetOffsets' }>): Promise<ResponseOf<'commitOffsets'>> {
    for (const position of command.offsets) this.queueOrThrow(position.topic, position.queueId);
    const result = await this.write(command);
    if (result !== undefined && 'error' in result) throw new LmqError(result.error, result.message);
    return { ok: true };
  }

  private queueOffsets(group: string, topic: string, queueId: number, timestampMs: number | undefined) {
    this.topicOrThrow(topic);
    return {
      topic, queueId,
      offset: this.state.committedOffset(group, topic, queueId) ?? null,
      ...this.state.queueRange(topic, queueId),
      ...(timestampMs === undefined ? {} : { timeOffset: this.state.offsetForTimestamp(topic, queueId, timestampMs) }),
    };
  }

  private queueOffsetRanges(topic: string, queues: number): { queue: number; minOffset: number; maxOffset: number }[] {
    return Array.from({ length: queues }, (_, queue) => {
      const { minOffset, nextOffset } = this.state.queueRange(topic, queue);
      return { queue, minOffset, maxOffset: nextOffset };
    });
  }

  /** Whether this node leads and has applied what earlier leaders committed: what requireLeader waits for. */
  private servesAsLeader(): boolean {
    return this.node.leadership().role === 'leader' && this.node.leaderCaughtUp();
  }

  /** Mid-election, waits (bounded) for a leader so the answer can name it. */
  private async requireLeader(): Promise<void> {
    let leadership = this.node.leadership();
    if (leadership.leader === null && !this.closing) {
      await this.node.waitForLeader(this.options.leaderWaitMs);
      leadership = this.node.leadership();
    }
    const { id, role, leader } = leadership;
    if (role !== 'leader') {
      throw new LmqError('LMQ_NOT_LEADER', `node ${id} is not the leader${leader ? `; the leader is ${leader}` : ''}`, { leader });
    }
    // A new leader answers from its state only once that state holds what earlier leaders
    // committed — else it could say a topic it has yet to apply does not exist.
    // Checked without awaiting first: nearly every request finds it so, on the hot path.
    if (!this.node.leaderCaughtUp() && !(await this.node.waitUntilLeaderCaughtUp(this.options.leaderWaitMs))) {
      throw new LmqError('LMQ_UNAVAILABLE', `node ${id} leads but has not yet applied what earlier leaders committed; retry`, NOT_SENT);
    }
  }

  private topicOrThrow(topic: string): { queues: number } {
    const found = this.state.topic(topic);
    if (found === undefined) {
      throw new LmqError('LMQ_TOPIC_NOT_FOUND', `topic "${topic}" does not exist; create it with: ledgermq topic create ${topic} --queues N`, { topic });
    }
    return found;
  }

  private queueOrThrow(topic: string, queueId: number): void {
    const { queues } = this.topicOrThrow(topic);
    if (queueId >= queues) throw new LmqError('LMQ_BAD_INPUT', `queue ${queueId} does not exist in topic "${topic}" (it has ${queues})`);
  }

  /** A produce routed over another queue count than the topic has (it grew since): refused, nothing stored. */
  private routeOrThrow(topic: string, routedQueues: number): void {
    const { queues } = this.topicOrThrow(topic);
    if (queues !== routedQueues) {
      throw new LmqError('LMQ_ROUTE_CHANGED', routeChangedMessage(topic, queues, routedQueues), { topic, queues });
    }
  }

  private async write(command: BrokerCommand, mode: QuorumMode = 'majority'): Promise<ApplyResult | undefined> {
    return (await this.node.propose(encodeCommand(command), mode)).result;
  }

  /** The topic's queue count and, while a growth's wait is on, which old queues hold keys (topic-growth.ts). */
  private route(topic: string): ResponseOf<'route'> {
    const { queues } = this.topicOrThrow(topic);
    const growth = this.state.topicGrowth(topic);
    if (growth === undefined) return { topic, queues };
    const remainingMs = Math.max(0, growth.untilMs - Date.now());
    return { topic, queues, growth: { fromQueues: growth.fromQueues, heldQueues: growth.waiting.map((q) => q.queueId), remainingMs } };
  }

  private async growTopic(topic: string, queues: number): Promise<ResponseOf<'growTopic'>> {
    this.topicOrThrow(topic);
    const { maxReorderWaitMs } = this.options;
    const result = await this.write({ kind: 'growTopic', topic, queues, timestampMs: Date.now(), maxReorderWaitMs });
    assert(result?.kind === 'growTopic', 'a growTopic command yields a growTopic result');
    if ('error' in result) throw new LmqError(result.error, result.message, { topic });
    return { topic, fromQueues: result.fromQueues, queues: result.toQueues, maxReorderWaitMs, waiting: result.waiting };
  }

  private async createTopic(topic: string, queues: number): Promise<ResponseOf<'createTopic'>> {
    const problem = topicNameProblem(topic);
    if (problem !== undefined) throw new LmqError('LMQ_BAD_INPUT', problem);
    const result = await this.write({ kind: 'createTopic', topic, queues });
    if (result?.kind === 'createTopic' && !result.ok) {
      throw new LmqError('LMQ_TOPIC_EXISTS', `topic "${topic}" already exists`, { topic });
    }
    return { topic, queues };
  }

  /** `encoded`: the messages' binary form, when the client sent them so (the edge decoded `messages` from it). */
  private async produce(producerId: string, seq: number, messages: ProduceMessageWire[], routedQueues: number | undefined, encoded: Uint8Array | undefined): Promise<ResponseOf<'produce'>> {
    // Checked here for a quick answer; the state machine checks again at apply time, which is
    // what decides (a topic could be created by a command still in flight).
    // One topic lookup per run of messages naming it (a batch's mostly share one), in the
    // order apply checks them: the message's queue, then the topic's route. The route is
    // checked under `leader` quorum only here (see below); otherwise apply decides, in log
    // order, and the refusal takes the seq, so the producer's later requests go on in the same session.
    const checkRoute = routedQueues !== undefined && this.options.quorum === 'leader';
    let topic: string | undefined;
    let queues = 0;
    for (const m of messages) {
      if (m.topic !== topic) {
        queues = this.topicOrThrow(m.topic).queues;
        topic = m.topic;
        if (m.queueId >= queues) this.queueOrThrow(m.topic, m.queueId);
        if (checkRoute && queues !== routedQueues) this.routeOrThrow(m.topic, routedQueues);
      } else if (m.queueId >= queues) {
        this.queueOrThrow(m.topic, m.queueId);
      }
    }
    // Resolved before the seq is reserved: a bad delay is refused with nothing held.
    const timestampMs = Date.now();
    const resolved = this.resolveDelays(messages, timestampMs);
    let release: () => void = () => undefined;
    if (this.options.quorum === 'leader' && seq !== UNSEQUENCED) {
      release = this.leaderSequences.reserve(this.node.logContext().term, producerId, seq, this.state.producerLastSeq(producerId));
    }
    let result: ProduceApplyResult | undefined;
    try {
      // `leader` quorum answers before apply, so apply must not refuse what was acknowledged:
      // there the route is checked above only, and a produce racing a growth's apply may land in
      // an old queue past its boundary (README, "Growing a topic").
      const fence = routedQueues === undefined || this.options.quorum === 'leader' ? {} : { routedQueues };
      const command: ProduceCommand = { kind: 'produce', producerId, seq, timestampMs, messages: resolved, ...fence };
      // The client's bytes are the entry's messages unless resolving delays made new ones (it
      // makes one for each delayed message), which are then encoded anew.
      const copyable = encoded !== undefined && resolved.every((message, i) => message === messages[i]);
      result = await this.produces.submit(copyable ? encodeProduceWith(command, encoded) : encodeProduce(command));
    } catch (error) {
      // Refused before reaching the log: the seq is free again for its retry.
      if (isLmqError(error, 'LMQ_NOT_LEADER') || isLmqError(error, 'LMQ_OVERLOADED') || isLmqError(error, 'LMQ_BAD_INPUT')) release();
      throw error;
    }
    if (result === undefined) {
      // `leader` quorum answers once the leader's copy is durable, before offsets are assigned.
      const offsets = resolved.map(() => null);
      if (!resolved.some((m) => isDelayed(m, timestampMs))) return { offsets, duplicate: false };
      return { offsets, deliverAtMs: resolved.map((m) => (isDelayed(m, timestampMs) ? m.deliverAtMs! : null)), duplicate: false };
    }
    if ('error' in result) throw new LmqError(result.error, result.message, result.error === 'LMQ_ROUTE_CHANGED' ? { seqRecorded: true } : {});
    return produceReply(result.placed, messages, result.duplicate);
  }

  /** The command carries only absolute due times: apply needs no delay.levels. */
  private resolveDelays(messages: readonly ProduceMessageWire[], timestampMs: number): ProduceMessage[] {
    return messages.map((wire) => {
      if (wire.deliverAtMs === undefined && wire.delayLevel === undefined) return wire;
      const { delayLevel: _level, deliverAtMs: _at, ...message } = wire;
      const deliverAtMs = resolveDeliverAtMs(wire, timestampMs, this.options.retry);
      return deliverAtMs === undefined ? message : { ...message, deliverAtMs };
    });
  }

  private async pull(request: RequestOf<'pull'>, context: RequestContext): Promise<ResponseOf<'pull'>> {
    this.topicOrThrow(request.topic);
    // Compiled before anything waits: a malformed expression is refused (LMQ_BAD_INPUT) at once.
    const filter = request.filter === undefined ? undefined : this.filters.get(request.filter);
    const waitMs = Math.min(request.waitMs, this.options.maxPollWaitMs);
    if (filter !== undefined && !filter.all) return this.pullFiltered(request, filter, waitMs, context);
    const hasMessages = () => this.hasMessagesFrom(request.topic, request.queueId, request.offset);
    if (!hasMessages() && waitMs > 0 && !this.closing && this.waitingPulls.size < this.options.maxWaitingPulls) {
      await this.waitForMessages(hasMessages, waitMs);
    }
    // Reserved after the wait, so a waiting pull holds none of its connection's reply budget.
    await context.reserveReplyBytes(pullReplyBoundBytes(request.maxBytes));
    const answer = this.state.readFrom(request.topic, request.queueId, request.offset, request.maxMessages, request.maxBytes);
    const last = answer.messages.at(-1);
    const nextBeginOffset = last === undefined ? answer.startOffset : last.offset + 1;
    return { ...answer, nextBeginOffset, ...this.state.queueRange(request.topic, request.queueId) };
  }

  /**
   * A pull with a filter. With nothing matching yet it long-polls as any pull does, but every
   * commit that adds to the queue resumes the scan where the last one stopped (so each record
   * is looked at once), and only a match, the scan bound or the end of the wait answers: the
   * answer then carries no messages and a nextBeginOffset past those that did not match.
   */
  private async pullFiltered(request: RequestOf<'pull'>, filter: MessageFilter, waitMs: number, context: RequestContext): Promise<ResponseOf<'pull'>> {
    const { topic, queueId } = request;
    const read = (fromOffset: number) => this.state.readMatching(topic, queueId, fromOffset, request.maxMessages, request.maxBytes, filter);
    const answered = (r: FilteredRead) => r.messages.length > 0 || r.scanBounded;
    const first = read(request.offset);
    let last = first;
    if (!answered(last) && waitMs > 0 && !this.closing && this.waitingPulls.size < this.options.maxWaitingPulls) {
      await this.waitForMessages(() => {
        if (!this.hasMessagesFrom(topic, queueId, last.nextBeginOffset)) return false;
        last = read(last.nextBeginOffset);
        return answered(last);
      }, waitMs);
    }
    assert(last.nextBeginOffset >= first.startOffset, 'a filtered pull ends at or after where it started');
    await context.reserveReplyBytes(pullReplyBoundBytes(request.maxBytes));
    return { startOffset: first.startOffset, messages: last.messages, nextBeginOffset: last.nextBeginOffset, ...this.state.queueRange(topic, queueId) };
  }

  /** Whether a read from `offset` would return a message (readFrom starts at minOffset when retention passed offset). */
  private hasMessagesFrom(topic: string, queueId: number, offset: number): boolean {
    const { minOffset, nextOffset } = this.state.queueRange(topic, queueId);
    return Math.max(offset, minOffset) < nextOffset;
  }

  /** Long polling: resolves as soon as a commit makes `ready` hold, or when waitMs runs out. */
  private waitForMessages(ready: () => boolean, waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        unsubscribe();
        this.waitingPulls.delete(finish);
        resolve();
      };
      const timer = setTimeout(finish, waitMs);
      const unsubscribe = this.node.onApplied(() => {
        if (ready()) finish();
      });
      this.waitingPulls.add(finish);
    });
  }

  /** Shutdown: waiting pulls answer now (empty), requests held for a leader answer now; new ones do not wait. */
  close(): void {
    this.closing = true;
    this.node.releaseLeaderWaiters(); // held requests answer now (not the leader) instead of delaying shutdown
    for (const end of [...this.waitingPulls]) end();
    this.options.transaction.board.close();
  }
}

/** A produce's placements as the reply carries them (ResponseOf<'produce'>): in message order, without what the producer chose. */
function produceReply(placed: readonly Placement[], messages: readonly ProduceMessageWire[], duplicate: boolean): ResponseOf<'produce'> {
  // A duplicate older than the dedup window is acknowledged without placements.
  assert(placed.length === messages.length || (duplicate && placed.length === 0), 'one placement per message');
  const offsets: (number | null)[] = new Array(placed.length);
  let delayed = false;
  for (let i = 0; i < placed.length; i++) {
    const placement = placed[i]!;
    assert(placement.msgId === messages[i]!.msgId, 'placements come in message order');
    offsets[i] = placement.offset;
    if (placement.deliverAtMs !== undefined) delayed = true;
  }
  if (!delayed) return { offsets, duplicate };
  return { offsets, deliverAtMs: placed.map((placement) => placement.deliverAtMs ?? null), duplicate };
}
