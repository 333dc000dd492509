// A bounded trace of what the simulator did, formatted only when a run fails: formatting
// every message of every passing seed would cost more than simulating it.
import type { Message } from '../raft/messages.js';

export class TraceLog {
  private readonly events: { tick: number; describe: () => string }[] = [];
  private dropped = 0;

  constructor(private readonly maxLines: number) {}

  /** The tick is taken now; the text is made only if the trace is printed. */
  add(tick: number, describe: () => string): void {
    this.events.push({ tick, describe });
    if (this.events.length > this.maxLines * 2) {
      const excess = this.events.length - this.maxLines;
      this.events.splice(0, excess);
      this.dropped += excess;
    }
  }

  lines(): string[] {
    const kept = this.events.slice(-this.maxLines);
    const skipped = this.dropped + this.events.length - kept.length;
    return [...(skipped > 0 ? [`… ${skipped} earlier events (replay with --trace for all)`] : []), ...kept.map((event) => `t${event.tick} ${event.describe()}`)];
  }
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return `${head} last ${m.lastIndex}@${m.lastTerm}${m.transfer ? ' transfer' : ''}`;
    case 'preVoteResp':
    case 'voteResp':
      return `${head} ${m.reject ? 'REJECT' : 'grant'}`;
    case 'append':
      return `${head} prev ${m.prevIndex}@${m.prevTerm} entries [${m.entries.map((e) => `${e.index}@${e.term}`).join(' ')}] commit ${m.commit}`;
    case 'appendResp':
      return `${head} ${m.reject ? `REJECT ${m.index} hint ${m.rejectHint}@${m.hintTerm}` : `ok ${m.index}`}`;
    case 'heartbeat':
      return `${head} commit ${m.commit}`;
    case 'heartbeatResp':
    case 'timeoutNow':
      return head;
    case 'probe':
    case 'probeResp':
      return `${head} last ${m.lastIndex}`;
    case 'snapshot':
      return `${head} snapshot ${m.index}@${m.snapshotTerm}`;
  }
}
