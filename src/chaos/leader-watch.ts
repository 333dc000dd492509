// Samples every node's status at a fixed interval during a chaos run: the nemesis targets the
// leader it last saw, and each change of leader goes into the recorder for the timeline.
// A node that does not answer within the sample's bound (killed, paused, cut off from us — the
// client ports are never cut) simply does not vote in that sample. With `recordSamples` every
// sample is also a `leader` operation in the history (the delay workload's late-delivery
// check excuses the time no node led).
import type { LedgerClient } from '../client/client.js';
import type { NodeStatus } from '../protocol/index.js';
import type { HistoryRecorder } from './recorder.js';

/** A loaded machine answers status slowly; a node silent this long counts as down for the sample. */
const statusTimeoutMs = 1_000;

export class LeaderWatch {
  private latest: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sampling = false;

  constructor(
    private readonly client: LedgerClient,
    private readonly nodeIds: readonly string[],
    private readonly recorder: HistoryRecorder,
    private readonly sampleEveryMs: number,
    private readonly recordSamples = false,
  ) {}

  /** The leader of the highest term seen in the last sample, or null. */
  get leader(): string | null {
    return this.latest;
  }

  start(): void {
    this.timer = setInterval(() => void this.sample(), this.sampleEveryMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  async sample(): Promise<void> {
    if (this.sampling) return; // the previous sample still waits on a paused node
    this.sampling = true;
    // One process for every sample: a sample always completes ok (a silent node just does not vote).
    const process = this.recordSamples ? this.recorder.newProcess('leader samples') : null;
    if (process !== null) this.recorder.invokeLeader(process);
    try {
      const statuses = await Promise.all(
        this.nodeIds.map((id) => this.client.callNode(id, { op: 'status' }, statusTimeoutMs).catch(() => null)),
      );
      let best: NodeStatus | null = null;
      for (const s of statuses) if (s !== null && s.role === 'leader' && (best === null || s.term > best.term)) best = s;
      const leader = best?.id ?? null;
      const term = best?.term ?? null;
      const previous = this.recorder.leaders[this.recorder.leaders.length - 1];
      if (previous === undefined || previous.leader !== leader || (term !== null && previous.term !== term)) {
        this.recorder.leaders.push({ time: this.recorder.now(), leader, term: term ?? previous?.term ?? 0 });
      }
      this.latest = leader;
      if (process !== null) this.recorder.leaderOk(process, leader);
    } finally {
      this.sampling = false;
    }
  }
}
