// Consumer group membership on the leader (soft state, as RocketMQ keeps it): consumers
// heartbeat, members silent for sessionTimeoutMs are dropped, and each topic's queues are
// split among the live members with RocketMQ's AllocateMessageQueueAveragely — contiguous
// blocks, one owner per queue, extra consumers idle. After a leader change the new leader
// rebuilds membership from the next heartbeats; meanwhile two consumers may briefly read one
// queue, which at-least-once delivery allows (the duplicates are redeliveries, in order).
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';

export interface MembershipOptions {
  readonly sessionTimeoutMs: number;
  readonly maxGroups: number;
  readonly maxMembersPerGroup: number;
}

export const DEFAULT_MEMBERSHIP_OPTIONS: MembershipOptions = Object.freeze({ sessionTimeoutMs: 3000, maxGroups: 10_000, maxMembersPerGroup: 1024 });

export interface Assignment {
  readonly queueIds: number[];
  readonly members: number;
  /** Changes whenever the member set changes: a consumer that sees a new generation re-reads its offsets. */
  readonly generation: number;
}

interface GroupState {
  readonly lastSeenMs: Map<string, number>;
  generation: number;
}

/** The queues consumer `index` of `members` (sorted) owns among `queues`. */
export function allocateAveragely(queues: number, members: number, index: number): number[] {
  assert(index >= 0 && index < members, 'member index in range');
  if (index >= queues) return [];
  const remainder = queues % members;
  const size = queues <= members ? 1 : Math.floor(queues / members) + (remainder > 0 && index < remainder ? 1 : 0);
  const start = remainder > 0 && index < remainder ? index * size : index * size + remainder;
  return Array.from({ length: Math.min(size, queues - start) }, (_, i) => start + i);
}

export class GroupMembership {
  private readonly groups = new Map<string, GroupState>();

  constructor(private readonly options: MembershipOptions = DEFAULT_MEMBERSHIP_OPTIONS) {}

  /** `nowMs` is monotonic (performance.now()): a wall-clock step must not keep dead members or drop live ones. */
  heartbeat(group: string, topic: string, consumerId: string, queues: number, nowMs: number): Assignment {
    const state = this.stateOf(`${group}\u0000${topic}`, nowMs);
    this.expire(state, nowMs);
    if (!state.lastSeenMs.has(consumerId)) {
      if (state.lastSeenMs.size >= this.options.maxMembersPerGroup) {
        throw new LmqError('LMQ_OVERLOADED', `group "${group}" already has ${this.options.maxMembersPerGroup} consumers on topic "${topic}"`);
      }
      state.generation++;
    }
    state.lastSeenMs.set(consumerId, nowMs);
    const members = [...state.lastSeenMs.keys()].sort();
    return { queueIds: allocateAveragely(queues, members.length, members.indexOf(consumerId)), members: members.length, generation: state.generation };
  }

  leave(group: string, topic: string, consumerId: string): void {
    const state = this.groups.get(`${group}\u0000${topic}`);
    if (state?.lastSeenMs.delete(consumerId)) state.generation++;
  }

  /** The group's live members per topic, each with the queues it owns (what its next heartbeat would answer). */
  members(group: string, queuesOf: (topic: string) => number | undefined, nowMs: number): { topic: string; consumerId: string; queueIds: number[] }[] {
    const members: { topic: string; consumerId: string; queueIds: number[] }[] = [];
    for (const [key, state] of this.groups) {
      const [name, topic] = key.split('\u0000') as [string, string];
      const queues = queuesOf(topic);
      if (name !== group || queues === undefined) continue;
      this.expire(state, nowMs);
      const ids = [...state.lastSeenMs.keys()].sort();
      for (const [index, consumerId] of ids.entries()) members.push({ topic, consumerId, queueIds: allocateAveragely(queues, ids.length, index) });
    }
    return members;
  }

  private stateOf(key: string, nowMs: number): GroupState {
    let state = this.groups.get(key);
    if (state === undefined) {
      if (this.groups.size >= this.options.maxGroups) this.dropIdleGroups(nowMs);
      if (this.groups.size >= this.options.maxGroups) throw new LmqError('LMQ_OVERLOADED', `more than ${this.options.maxGroups} consumer groups are active`);
      state = { lastSeenMs: new Map(), generation: 0 };
      this.groups.set(key, state);
    }
    return state;
  }

  private expire(state: GroupState, nowMs: number): void {
    for (const [id, seenMs] of state.lastSeenMs) {
      if (nowMs - seenMs > this.options.sessionTimeoutMs) {
        state.lastSeenMs.delete(id);
        state.generation++;
      }
    }
  }

  /** Drops groups whose every member left or went silent (consumers killed without leaving). */
  private dropIdleGroups(nowMs: number): void {
    for (const [key, state] of this.groups) {
      this.expire(state, nowMs);
      if (state.lastSeenMs.size === 0) this.groups.delete(key);
    }
  }
}
