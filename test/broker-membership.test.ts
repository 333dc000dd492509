import { describe, expect, it } from 'vitest';
import { GroupMembership, allocateAveragely } from '../src/broker/membership.js';

const split = (queues: number, members: number) => Array.from({ length: members }, (_, i) => allocateAveragely(queues, members, i));

describe('consumer groups – queue allocation (RocketMQ AllocateMessageQueueAveragely)', () => {
  it('gives each queue exactly one owner, in contiguous blocks, extras idle', () => {
    expect(split(4, 2)).toEqual([[0, 1], [2, 3]]);
    expect(split(5, 2)).toEqual([[0, 1, 2], [3, 4]]);
    expect(split(8, 3)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7]]);
    expect(split(2, 3)).toEqual([[0], [1], []]);
    for (let queues = 1; queues <= 12; queues++) {
      for (let members = 1; members <= 8; members++) {
        expect(split(queues, members).flat()).toEqual(Array.from({ length: queues }, (_, i) => i));
      }
    }
  });
});

describe('consumer groups – membership', () => {
  it('rebalances on join, leave and session timeout, bumping the generation each time', () => {
    const groups = new GroupMembership({ sessionTimeoutMs: 1000, maxGroups: 10, maxMembersPerGroup: 10 });
    const a1 = groups.heartbeat('g', 't', 'a', 4, 0);
    expect(a1).toEqual({ queueIds: [0, 1, 2, 3], members: 1, generation: 1 });
    expect(groups.heartbeat('g', 't', 'b', 4, 100)).toEqual({ queueIds: [2, 3], members: 2, generation: 2 });
    expect(groups.heartbeat('g', 't', 'a', 4, 200).queueIds).toEqual([0, 1]);
    groups.leave('g', 't', 'a');
    expect(groups.heartbeat('g', 't', 'b', 4, 300)).toEqual({ queueIds: [0, 1, 2, 3], members: 1, generation: 3 });
    groups.heartbeat('g', 't', 'a', 4, 400);
    // b stays silent past its session: a alone owns everything again.
    expect(groups.heartbeat('g', 't', 'a', 4, 1500)).toMatchObject({ queueIds: [0, 1, 2, 3], members: 1 });
    // Groups and topics are independent.
    expect(groups.heartbeat('other', 't', 'x', 4, 1500).queueIds).toEqual([0, 1, 2, 3]);
  });

  it('refuses members beyond its bound', () => {
    const groups = new GroupMembership({ sessionTimeoutMs: 1000, maxGroups: 10, maxMembersPerGroup: 2 });
    groups.heartbeat('g', 't', 'a', 4, 0);
    groups.heartbeat('g', 't', 'b', 4, 0);
    expect(() => groups.heartbeat('g', 't', 'c', 4, 0)).toThrow(/already has 2 consumers/);
  });

  it('makes room for new groups once the old ones’ consumers went silent', () => {
    const groups = new GroupMembership({ sessionTimeoutMs: 1000, maxGroups: 2, maxMembersPerGroup: 10 });
    groups.heartbeat('g1', 't', 'a', 4, 0);
    groups.heartbeat('g2', 't', 'b', 4, 0);
    expect(() => groups.heartbeat('g3', 't', 'c', 4, 500)).toThrow(/more than 2 consumer groups/);
    expect(groups.heartbeat('g3', 't', 'c', 4, 2000).queueIds).toEqual([0, 1, 2, 3]); // g1 and g2 timed out
  });
});
