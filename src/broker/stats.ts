// What the broker service counts as it serves, for the console's chart and /metrics (src/http):
// messages handed to consumers and body bytes accepted, per topic; each produce request's cost
// (receipt to answer), handed to listeners (the metrics' histogram); and per wall-clock second
// the messages produced and the p99 of that second's produce costs, for the last MAX_SECONDS.
// Soft state of one process: it starts at zero and counts only what this node served as leader.
import type { BrokerStatsReply, ProduceSecond } from '../protocol/index.js';
import { assert } from '../util/assert.js';

/** Five minutes of seconds: what the console's chart shows. */
const MAX_SECONDS = 300;
/** Costs kept for one second's p99; past it the second's p99 is of its first this many. */
const MAX_COSTS_PER_SECOND = 20_000;
/** Topics (and so label values) counted; more are folded into one, so a flood of names stays bounded. */
const MAX_TOPICS = 10_000;
const OTHER_TOPICS = '(other)';

/** An acknowledged produce request: the distinct topics it wrote to and its cost. */
export type ProduceListener = (topics: readonly string[], costMs: number) => void;

export class BrokerStats {
  private readonly messagesOut = new Map<string, number>();
  private readonly bytesIn = new Map<string, number>();
  private readonly produceListeners = new Set<ProduceListener>();
  private readonly seconds: ProduceSecond[] = [];
  private current: { atMs: number; messages: number; costsMs: number[] } | null = null;

  constructor(
    private readonly nodeId: string,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** An acknowledged produce request: its messages' topics and body sizes, and its cost. */
  produced(messages: readonly { topic: string; body: Uint8Array }[], costMs: number): void {
    assert(costMs >= 0, 'a cost is not negative');
    for (const m of messages) add(this.bytesIn, m.topic, m.body.byteLength);
    const topics = distinctTopics(messages);
    for (const listener of this.produceListeners) listener(topics, costMs);
    const second = this.secondNow();
    second.messages += messages.length;
    if (second.costsMs.length < MAX_COSTS_PER_SECOND) second.costsMs.push(costMs);
  }

  /** Messages answered to a pull or a receive. */
  delivered(topic: string, count: number): void {
    if (count > 0) add(this.messagesOut, topic, count);
  }

  onProduced(listener: ProduceListener): () => void {
    this.produceListeners.add(listener);
    return () => this.produceListeners.delete(listener);
  }

  reply(): BrokerStatsReply {
    this.secondNow(); // closes a second that has ended
    return { nodeId: this.nodeId, messagesOut: Object.fromEntries(this.messagesOut), bytesIn: Object.fromEntries(this.bytesIn), seconds: [...this.seconds] };
  }

  /** The second now being counted; the previous one, once ended, joins `seconds` (quiet seconds in between as zeros). */
  private secondNow(): { atMs: number; messages: number; costsMs: number[] } {
    const atMs = Math.floor(this.nowMs() / 1000) * 1000;
    const current = this.current;
    if (current !== null && current.atMs === atMs) return current;
    if (current !== null && current.atMs < atMs) {
      this.close({ atMs: current.atMs, messages: current.messages, p99Ms: p99(current.costsMs) });
      for (let quiet = current.atMs + 1000; quiet < atMs && quiet <= current.atMs + MAX_SECONDS * 1000; quiet += 1000) this.close({ atMs: quiet, messages: 0, p99Ms: null });
    }
    // A clock that stepped back starts a new second; the chart shows the gap.
    this.current = { atMs, messages: 0, costsMs: [] };
    return this.current;
  }

  private close(second: ProduceSecond): void {
    this.seconds.push(second);
    if (this.seconds.length > MAX_SECONDS) this.seconds.splice(0, this.seconds.length - MAX_SECONDS);
  }
}

function add(counts: Map<string, number>, topic: string, n: number): void {
  const key = counts.has(topic) || counts.size < MAX_TOPICS ? topic : OTHER_TOPICS;
  counts.set(key, (counts.get(key) ?? 0) + n);
}

/** Nearest-rank p99 of the costs; null when there are none. */
export function p99(costsMs: readonly number[]): number | null {
  if (costsMs.length === 0) return null;
  const sorted = [...costsMs].sort((a, b) => a - b);
  const rank = Math.ceil(0.99 * sorted.length) - 1;
  return sorted[Math.max(0, rank)]!;
}

/** The topics messages name, each once, in first-named order (a produce's messages mostly name one). */
function distinctTopics(messages: readonly { topic: string }[]): string[] {
  const first = messages[0]?.topic;
  if (first === undefined) return [];
  for (let i = 1; i < messages.length; i++) if (messages[i]!.topic !== first) return [...new Set(messages.map((m) => m.topic))];
  return [first];
}
