// Under `leader` quorum a produce is acknowledged once the leader's copy is durable — before
// it is applied, so the apply-time sequence check (a gap is refused with LMQ_OUT_OF_ORDER)
// could no longer reach the client: after a failover dropped seqs N..N+k, every later send of
// that producer would be acknowledged and then discarded at apply. The leader therefore checks
// each seq when proposing, against the applied state plus its own proposals of this term.
// Applied state only ever moves a producer's last seq forward, so a seq accepted here can
// become a duplicate at apply (stored once already) but never a gap.
import { LmqError } from '../util/errors.js';

/** Producers remembered per term; beyond it the map is cleared and the applied state decides alone. */
const MAX_TRACKED_PRODUCERS = 10_000;

export class LeaderSequences {
  private term = -1;
  private readonly nextSeq = new Map<string, number>();

  /**
   * Throws LMQ_OUT_OF_ORDER unless `seq` is the next one for the producer (or an earlier one:
   * a retry, deduplicated at apply). Returns a function that undoes the reservation if the
   * proposal never reached the log.
   */
  reserve(term: number, producerId: string, seq: number, appliedLastSeq: number): () => void {
    if (term !== this.term || this.nextSeq.size >= MAX_TRACKED_PRODUCERS) {
      this.term = term;
      this.nextSeq.clear();
    }
    const expected = this.nextSeq.get(producerId) ?? appliedLastSeq + 1;
    if (seq > expected) {
      throw new LmqError('LMQ_OUT_OF_ORDER', `producer "${producerId}" sent seq ${seq} but the leader expects ${expected}; an earlier send is missing — resend in order`, { expectedSeq: expected });
    }
    if (seq < expected) return () => undefined; // a retry of something already proposed or applied
    this.nextSeq.set(producerId, seq + 1);
    // Undone in any order: a batch refused before the log releases s and s+1 of one producer,
    // and the next expected seq must come back to the earliest of them (s), not to s+1.
    return () => {
      const next = this.nextSeq.get(producerId);
      if (this.term === term && next !== undefined && next > seq) this.nextSeq.set(producerId, seq);
    };
  }
}
