// The simulator's network: every message is delayed, and may be dropped or duplicated, by
// seeded draws; links can be cut one way or both ways. Delivery order follows the drawn
// delays, so messages between two nodes reorder.
import type { Message } from '../raft/messages.js';
import type { TransferMessage } from '../node/snapshot-transfer.js';
import type { NodeId } from '../raft/types.js';
import type { Rng } from './rng.js';

export interface NetworkFaults {
  dropProbability: number;
  duplicateProbability: number;
  /** Each message takes 1 + [0, maxExtraDelayTicks] ticks. */
  maxExtraDelayTicks: number;
}

interface InFlight {
  readonly deliverAtTick: number;
  readonly sequence: number;
  readonly message: Message | TransferMessage;
}

/** Messages in flight beyond this are dropped, as a real bounded send queue would. */
export const MAX_IN_FLIGHT_MESSAGES = 20_000;

export class SimNetwork {
  private inFlight: InFlight[] = [];
  private sequence = 0;
  /** "a>b" present: messages from a to b are lost. */
  private readonly cutLinks = new Set<string>();
  faults: NetworkFaults;

  constructor(
    private readonly rng: Rng,
    faults: NetworkFaults,
  ) {
    this.faults = faults;
  }

  send(message: Message | TransferMessage, nowTick: number): void {
    if (this.inFlight.length >= MAX_IN_FLIGHT_MESSAGES || this.rng.chance(this.faults.dropProbability)) return;
    const copies = this.rng.chance(this.faults.duplicateProbability) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = 1 + this.rng.int(this.faults.maxExtraDelayTicks + 1);
      this.inFlight.push({ deliverAtTick: nowTick + delay, sequence: this.sequence++, message });
    }
  }

  /** Messages due at or before nowTick whose link is up, in delivery order. */
  takeDue(nowTick: number): (Message | TransferMessage)[] {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const item of this.inFlight) (item.deliverAtTick <= nowTick ? due : later).push(item);
    this.inFlight = later;
    due.sort((a, b) => a.deliverAtTick - b.deliverAtTick || a.sequence - b.sequence);
    return due.filter((item) => !this.cutLinks.has(`${item.message.from}>${item.message.to}`)).map((item) => item.message);
  }

  cut(from: NodeId, to: NodeId): void {
    this.cutLinks.add(`${from}>${to}`);
  }

  isolate(node: NodeId, others: readonly NodeId[]): void {
    for (const other of others) {
      if (other === node) continue;
      this.cut(node, other);
      this.cut(other, node);
    }
  }

  /** What `node` sent that is still in flight arrives `extraTicks` later (a dead node's bytes retransmitted late). */
  delayFrom(node: NodeId, extraTicks: number): void {
    this.inFlight = this.inFlight.map((item) => (item.message.from === node ? { ...item, deliverAtTick: item.deliverAtTick + extraTicks } : item));
  }

  /** The node restarted: what was in flight to it went with its connections (TCP is reset). */
  dropTo(node: NodeId): void {
    this.inFlight = this.inFlight.filter((item) => item.message.to !== node);
  }

  healAll(): void {
    this.cutLinks.clear();
  }

  cutLinkCount(): number {
    return this.cutLinks.size;
  }
}
