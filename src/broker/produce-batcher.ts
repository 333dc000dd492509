// The leader's produce batcher: produces that arrive while the last batch of them is out
// (proposed, not yet answered) wait, and go as one produceBatch entry when it is answered —
// as the client's own batching does with sends while its requests are out (Kafka's linger.ms=0,
// RocketMQ 5's autoBatch). One entry per round instead of one per request is what an
// unbatched client's produce costs across the three nodes: the per-entry parts of the log,
// the replication and the apply (state-machine.ts applies a batch in one pass). A produce
// that finds nothing out waits for the end of the event loop's turn only, so the produces
// that arrived together start together and a lone produce goes at once.
//
// Bounds: a batch holds what one produce may (produceBatchFits: messages, bodies, one entry's
// bytes); a produce that would not fit sends the waiting batch at once, so at most one batch
// waits. A batch waits maxHoldMs at most: a batch out may take the whole proposal deadline
// (`all` quorum with a follower down waits maxProposalWaitMs, 10 s, to time out), and what
// arrived behind it should not wait that long again before it is even appended. What is out is
// bounded by the node's own admission (raft.maxUncommittedEntries, bytes).
import { assert } from '../util/assert.js';
import { type BrokerCommand, type EncodedProduce, encodeProduceBatch, produceBatchFits, type ProduceBatchTotals } from './commands.js';
import type { ApplyResult, ProduceApplyResult } from './state-machine.js';

/**
 * Proposes Entry.data (and the command it encodes, which the leader's own apply may use instead
 * of decoding it again); resolves with its apply result (undefined under `leader` quorum,
 * answered before apply).
 */
export type ProposeEntry = (data: Uint8Array, command: BrokerCommand) => Promise<ApplyResult | undefined>;

interface WaitingProduce {
  readonly produce: EncodedProduce;
  readonly resolve: (result: ProduceApplyResult | undefined) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * How long a produce may wait behind a batch out before its own batch goes anyway: well above a
 * round under load here (1–10 ms: the leader's fsync, a follower's, the loopback), so it does
 * not split batches, and far below the proposal deadline.
 */
export const MAX_PRODUCE_HOLD_MS = 50;

const EMPTY_TOTALS: ProduceBatchTotals = Object.freeze({ produces: 0, messages: 0, bodyBytes: 0, dataBytes: 0 });

export class ProduceBatcher {
  private waiting: WaitingProduce[] = [];
  private totals: ProduceBatchTotals = EMPTY_TOTALS;
  /** Batches proposed and not yet answered. */
  private batchesOut = 0;
  private flushScheduled = false;
  /** Sends what waits when it has waited maxHoldMs behind a batch out; null while nothing waits so. */
  private holdTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly propose: ProposeEntry,
    private readonly maxHoldMs = MAX_PRODUCE_HOLD_MS,
  ) {
    assert(maxHoldMs > 0, 'a produce waits a positive time at most');
  }

  /** Resolves with the produce's own apply result, or rejects as its proposal did (each produce of a batch alike). */
  submit(produce: EncodedProduce): Promise<ProduceApplyResult | undefined> {
    return new Promise((resolve, reject) => {
      if (!produceBatchFits(withProduce(this.totals, produce))) this.send();
      this.waiting.push({ produce, resolve, reject });
      this.totals = withProduce(this.totals, produce);
      if (this.batchesOut === 0) {
        if (!this.flushScheduled) {
          this.flushScheduled = true;
          setImmediate(() => {
            this.flushScheduled = false;
            if (this.batchesOut === 0) this.send();
          });
        }
      } else if (this.holdTimer === null) {
        this.holdTimer = setTimeout(() => {
          this.holdTimer = null;
          this.send();
        }, this.maxHoldMs);
        // What waits is not acknowledged: it must not keep a stopping process alive.
        this.holdTimer.unref();
      }
    });
  }

  /** Proposes what waits as one entry (nothing when nothing waits). */
  private send(): void {
    if (this.holdTimer !== null) {
      clearTimeout(this.holdTimer);
      this.holdTimer = null;
    }
    const batch = this.waiting;
    if (batch.length === 0) return;
    this.waiting = [];
    this.totals = EMPTY_TOTALS;
    this.batchesOut += 1;
    let proposal: Promise<ApplyResult | undefined>;
    try {
      const entry = encodeProduceBatch(batch.map((waiting) => waiting.produce));
      proposal = this.propose(entry.data, entry.command);
    } catch (error) {
      proposal = Promise.reject(error);
    }
    proposal.then(
      (result) => {
        let results: (ProduceApplyResult | undefined)[];
        try {
          results = resultsOf(result, batch.length);
        } catch (error) {
          // An InvariantViolation: each request fails with it (the RPC server crashes the node on it).
          for (const waiting of batch) waiting.reject(error);
          return;
        }
        batch.forEach((waiting, i) => waiting.resolve(results[i]));
      },
      (error: unknown) => {
        for (const waiting of batch) waiting.reject(error);
      },
    ).finally(() => {
      this.batchesOut -= 1;
      assert(this.batchesOut >= 0, 'batches out went negative');
      if (this.batchesOut === 0) this.send();
    });
  }
}

function withProduce(totals: ProduceBatchTotals, produce: EncodedProduce): ProduceBatchTotals {
  return {
    produces: totals.produces + 1,
    messages: totals.messages + produce.command.messages.length,
    bodyBytes: totals.bodyBytes + produce.bodyBytes,
    dataBytes: totals.dataBytes + produce.data.byteLength,
  };
}

/** Each produce's result: a batch of one is the produce itself; undefined when answered before apply. */
function resultsOf(result: ApplyResult | undefined, produces: number): (ProduceApplyResult | undefined)[] {
  if (result === undefined) return new Array<undefined>(produces).fill(undefined);
  if (produces === 1) {
    assert(result.kind === 'produce', 'a produce command yields a produce result');
    return [result];
  }
  assert(result.kind === 'produceBatch' && result.results.length === produces, 'a produceBatch yields one result per produce');
  return result.results;
}
