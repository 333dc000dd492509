import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeCommand, encodeProduce, type ProduceCommand } from '../src/broker/commands.js';
import { MAX_PRODUCE_HOLD_MS, ProduceBatcher } from '../src/broker/produce-batcher.js';
import type { ApplyResult, ProduceApplyResult } from '../src/broker/state-machine.js';
import { LmqError } from '../src/util/errors.js';

function produce(seq: number, messages = 1, bodyBytes = 1): ProduceCommand {
  return {
    kind: 'produce', producerId: 'p', seq, timestampMs: 1000 + seq,
    messages: Array.from({ length: messages }, (_, i) => ({ msgId: `p-${seq}.${i}`, topic: 't', queueId: 0, body: new Uint8Array(bodyBytes) })),
  };
}

/** A proposer that holds each proposal until the test answers it; answers as apply would. */
class HeldProposals {
  readonly proposed: { data: Uint8Array; answer: (result: ApplyResult | undefined) => void; fail: (error: unknown) => void }[] = [];
  readonly propose = (data: Uint8Array): Promise<ApplyResult | undefined> =>
    new Promise((answer, fail) => this.proposed.push({ data, answer, fail }));

  /** The seqs each proposal carried, in order. */
  seqs(): number[][] {
    return this.proposed.map(({ data }) => {
      const command = decodeCommand(data);
      if (command.kind === 'produce') return [command.seq];
      if (command.kind === 'produceBatch') return command.produces.map((p) => p.seq);
      throw new Error(`proposed a ${command.kind}`);
    });
  }

  /** Answers proposal i as if each of its produces placed its messages at offset = seq. */
  applyAt(i: number): void {
    const command = decodeCommand(this.proposed[i]!.data);
    const resultOf = (p: ProduceCommand): ProduceApplyResult => ({ kind: 'produce', placed: p.messages.map((m) => ({ msgId: m.msgId, queueId: 0, offset: p.seq })), duplicate: false });
    if (command.kind === 'produce') this.proposed[i]!.answer(resultOf(command));
    else if (command.kind === 'produceBatch') this.proposed[i]!.answer({ kind: 'produceBatch', results: command.produces.map(resultOf) });
  }
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('produce batcher', () => {
  it('sends a lone produce as itself at the end of the turn, and what arrives while it is out as one batch when it is answered', async () => {
    const held = new HeldProposals();
    const batcher = new ProduceBatcher(held.propose);
    const first = batcher.submit(encodeProduce(produce(1)));
    expect(held.proposed).toHaveLength(0); // waits for the rest of this turn
    await turn();
    expect(held.seqs()).toEqual([[1]]);
    expect(decodeCommand(held.proposed[0]!.data).kind).toBe('produce');
    const waiting = [2, 3, 4].map((seq) => batcher.submit(encodeProduce(produce(seq))));
    await turn();
    expect(held.seqs()).toEqual([[1]]); // held while the first is out
    held.applyAt(0);
    expect(await first).toMatchObject({ placed: [{ offset: 1 }] });
    await turn();
    expect(held.seqs()).toEqual([[1], [2, 3, 4]]);
    held.applyAt(1);
    const results = await Promise.all(waiting);
    expect(results.map((r) => (r !== undefined && 'placed' in r ? r.placed[0]!.offset : null))).toEqual([2, 3, 4]);
  });

  it('starts produces that arrive in one turn together', async () => {
    const held = new HeldProposals();
    const batcher = new ProduceBatcher(held.propose);
    const all = [1, 2, 3].map((seq) => batcher.submit(encodeProduce(produce(seq))));
    await turn();
    expect(held.seqs()).toEqual([[1, 2, 3]]);
    held.applyAt(0);
    expect(await Promise.all(all)).toHaveLength(3);
  });

  it('fails every produce of a batch as its proposal failed, and goes on with the next', async () => {
    const held = new HeldProposals();
    const batcher = new ProduceBatcher(held.propose);
    const first = batcher.submit(encodeProduce(produce(1)));
    await turn();
    const batch = [2, 3].map((seq) => batcher.submit(encodeProduce(produce(seq))));
    const lost = new LmqError('LMQ_LEADERSHIP_LOST', 'leadership lost');
    held.proposed[0]!.fail(lost);
    await expect(first).rejects.toBe(lost);
    await turn();
    expect(held.seqs()).toEqual([[1], [2, 3]]);
    held.proposed[1]!.fail(lost);
    for (const p of batch) await expect(p).rejects.toBe(lost);
    const after = batcher.submit(encodeProduce(produce(4)));
    await turn();
    expect(held.seqs()).toEqual([[1], [2, 3], [4]]);
    held.applyAt(2);
    expect(await after).toMatchObject({ placed: [{ offset: 4 }] });
  });

  it('answers every produce with undefined when the proposal is acknowledged before apply (`leader` quorum)', async () => {
    const held = new HeldProposals();
    const batcher = new ProduceBatcher(held.propose);
    const all = [1, 2].map((seq) => batcher.submit(encodeProduce(produce(seq))));
    await turn();
    held.proposed[0]!.answer(undefined);
    expect(await Promise.all(all)).toEqual([undefined, undefined]);
  });

  it('sends the waiting batch at once when the next produce would take it past one produce\'s bounds', async () => {
    const held = new HeldProposals();
    const batcher = new ProduceBatcher(held.propose);
    void batcher.submit(encodeProduce(produce(1)));
    await turn();
    // 1,000 + 24 messages fit one batch; the next 1 does not, so those go at once (two out).
    void batcher.submit(encodeProduce(produce(2, 1000)));
    void batcher.submit(encodeProduce(produce(3, 24)));
    expect(held.proposed).toHaveLength(1);
    void batcher.submit(encodeProduce(produce(4, 1)));
    expect(held.seqs()).toEqual([[1], [2, 3]]);
    // Bodies likewise: 4 MiB in all at most.
    void batcher.submit(encodeProduce(produce(5, 1, 4 * 1024 * 1024)));
    expect(held.seqs()).toEqual([[1], [2, 3], [4]]);
    // What waits goes once nothing is out.
    held.applyAt(0);
    held.applyAt(1);
    await turn();
    expect(held.seqs()).toEqual([[1], [2, 3], [4]]);
    held.applyAt(2);
    await turn();
    expect(held.seqs()).toEqual([[1], [2, 3], [4], [5]]);
  });

  describe('with a batch out that is not answered', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('sends what waits behind it after maxHoldMs, not after the batch out answers', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const held = new HeldProposals();
      const batcher = new ProduceBatcher(held.propose);
      void batcher.submit(encodeProduce(produce(1)));
      await turn();
      const second = batcher.submit(encodeProduce(produce(2)));
      const third = batcher.submit(encodeProduce(produce(3)));
      vi.advanceTimersByTime(MAX_PRODUCE_HOLD_MS - 1);
      expect(held.seqs()).toEqual([[1]]);
      vi.advanceTimersByTime(1);
      expect(held.seqs()).toEqual([[1], [2, 3]]); // two out now; the first still unanswered
      const fourth = batcher.submit(encodeProduce(produce(4)));
      held.applyAt(1);
      expect(await Promise.all([second, third])).toMatchObject([{ placed: [{ offset: 2 }] }, { placed: [{ offset: 3 }] }]);
      await turn();
      expect(held.seqs()).toEqual([[1], [2, 3]]); // the first is still out: 4 waits for it or its hold
      held.applyAt(0);
      await turn();
      expect(held.seqs()).toEqual([[1], [2, 3], [4]]);
      vi.advanceTimersByTime(MAX_PRODUCE_HOLD_MS); // the hold was cleared when 4 went: nothing more goes
      expect(held.seqs()).toEqual([[1], [2, 3], [4]]);
      held.applyAt(2);
      expect(await fourth).toMatchObject({ placed: [{ offset: 4 }] });
    });
  });
});
