// The leader's delivery scheduler for delayed messages (RocketMQ's ScheduleMessageService, over
// a replicated index instead of per-level queues): every delay.scanIntervalMs the leader reads
// the timer records due by its clock, in due order, and proposes deliverDue with them; applying
// it (state-machine.ts) places each one whose timer record still exists. No timer per message:
// one interval, whatever is scheduled (Node clamps a setTimeout past 24.8 days to 1 ms).
//
// One proposal in flight at a time, so the leader never names a timer twice by itself; a new
// leader may name timers an old leader's proposal also named (it cannot know whether that
// proposal commits), and apply skips those already delivered — never placed twice. A proposal
// that fails (leadership lost, overloaded) is simply retried by the next scan. A committed
// proposal is followed at once by the next scan, so what came due meanwhile does not wait for
// the interval and a backlog of due messages drains at proposal speed.
import type { Logger } from 'pino';
import type { RaftNode } from '../node/raft-node.js';
import { LIMITS } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { encodeCommand } from './commands.js';
import type { ApplyResult, BrokerStateMachine } from './state-machine.js';

export interface SchedulerSettings {
  readonly scanIntervalMs: number;
}

/** Bounds of one deliverDue: what one produce entry may carry. */
const MAX_DUE_PER_COMMAND = LIMITS.maxMessagesPerProduce;
const MAX_DUE_BYTES_PER_COMMAND = LIMITS.maxProduceBodyBytes;

export class DeliveryScheduler {
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private closed = false;
  private readonly warnings: RateLimitedLog;

  constructor(
    private readonly node: RaftNode<ApplyResult>,
    private readonly state: BrokerStateMachine,
    private readonly settings: SchedulerSettings,
    private readonly logger: Logger,
    /** The leader's clock (epoch ms); a test may fix it. */
    private readonly nowMs: () => number = Date.now,
  ) {
    assert(Number.isSafeInteger(settings.scanIntervalMs) && settings.scanIntervalMs >= 1, 'scan interval must be a positive count of ms');
    this.warnings = new RateLimitedLog(logger, 10_000);
  }

  start(): void {
    assert(this.timer === null, 'the scheduler starts once');
    this.timer = setInterval(() => this.scan(), this.settings.scanIntervalMs);
  }

  stop(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.warnings.flush();
  }

  /** One round: on the leader, with no proposal of its own in flight, propose what is due. */
  scan(): void {
    if (this.closed || this.inFlight || this.node.installing() || this.node.leadership().role !== 'leader') return;
    const timestampMs = this.nowMs();
    const messages = this.state.dueTimers(timestampMs, MAX_DUE_PER_COMMAND, MAX_DUE_BYTES_PER_COMMAND);
    if (messages.length === 0) return;
    this.inFlight = true;
    this.node.propose(encodeCommand({ kind: 'deliverDue', timestampMs, messages }), 'majority').then(
      ({ result }) => {
        this.inFlight = false;
        assert(result?.kind === 'deliverDue', 'a deliverDue command yields a deliverDue result');
        if (result.skipped > 0) this.logger.debug({ delivered: result.delivered, skipped: result.skipped }, 'delayed messages: some were delivered already');
        // What came due while this one committed goes now, not a scan interval later.
        setImmediate(() => this.scan());
      },
      (error: unknown) => {
        this.inFlight = false;
        this.warnings.warn('deliverDue', { err: error, messages: messages.length }, 'delayed messages not delivered yet; the next scan proposes them again');
      },
    );
  }
}
