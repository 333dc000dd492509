// `leader transfer` and `leader preferred` against a real three-node cluster of child processes,
// driven through the CLI as a user runs it.
import { describe, expect, it } from 'vitest';
import { until } from '../src/util/until.js';
import { clusterForFile } from './process-helpers.js';

const { cluster: started, cli } = clusterForFile();

async function statusJson(): Promise<{ leader: string | null; term: number; nodes: { id: string; role: string }[] }> {
  const status = await cli(['status', '--json']);
  expect(status.code).toBe(0);
  return JSON.parse(status.stdout);
}

/** Waits until `id` leads, as `status` shows it. */
async function untilLeads(id: string, timeoutMs = 30_000): Promise<void> {
  await until(`${id} leads`, async () => (await started().leader()).id === id || null, timeoutMs, 100);
  await until(`status shows ${id} leading`, async () => (await statusJson()).leader === id || null, timeoutMs, 200);
}

describe('leader cli – transfer and preferred leader on a real cluster', () => {
  it('transfer moves leadership to the named node and answers once it leads; status shows it', async () => {
    const before = await statusJson();
    const target = before.nodes.find((n) => n.role === 'follower')!.id;
    const moved = await cli(['leader', 'transfer', '--to', target, '--json']);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    const answer = JSON.parse(moved.stdout);
    expect(answer).toMatchObject({ leader: target, moved: true });
    expect(answer.term).toBeGreaterThan(before.term);
    const after = await statusJson();
    expect(after.leader).toBe(target);
    expect(after.nodes.filter((n) => n.role === 'leader').map((n) => n.id)).toEqual([target]);
    // Once more to the same node: it leads already, nothing moves.
    const again = await cli(['leader', 'transfer', '--to', target]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`${target} leads already (term ${answer.term})\n`);
    // Writes go on through the new leader.
    expect((await cli(['topic', 'create', 'after-transfer', '--queues', '1'])).code).toBe(0);
  });

  it('refuses an unknown node (exit 2) and a node that is down (exit 1, saying so), and keeps the leader', async () => {
    const unknown = await cli(['leader', 'transfer', '--to', 'n9']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--to "n9" is not a node of test \(its nodes: n1, n2, n3\)/);
    const leader = (await started().leader()).id;
    const down = started().config.nodes.find((n) => n.id !== leader)!.id;
    await started().kill(down);
    try {
      const refused = await cli(['leader', 'transfer', '--to', down, '--timeout', '5000']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`node ${down} is down or cut off`));
      expect((await statusJson()).leader).toBe(leader);
    } finally {
      started().start(down);
    }
  });

  it('a preferred leader takes over, and takes over again after it is killed and restarted; none clears it', async () => {
    const leader = (await started().leader()).id;
    const preferred = started().config.nodes.find((n) => n.id !== leader)!.id;
    const set = await cli(['leader', 'preferred', preferred, '--json']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toEqual({ preferredLeader: preferred });
    await untilLeads(preferred);
    // A transfer away from the preferred leader is refused: leadership would only come back.
    const away = started().config.nodes.find((n) => n.id !== preferred)!.id;
    const refused = await cli(['leader', 'transfer', '--to', away]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`node ${preferred} is the preferred leader`));

    await started().kill(preferred);
    const interim = await started().leader([preferred]);
    expect(interim.id).not.toBe(preferred);
    started().start(preferred);
    await untilLeads(preferred, 60_000);

    const cleared = await cli(['leader', 'preferred', 'none']);
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toMatch(/no preferred leader/);
    // With none set, a transfer away sticks.
    const moved = await cli(['leader', 'transfer', '--to', away, '--json']);
    expect(moved.code).toBe(0);
    expect(JSON.parse(moved.stdout)).toMatchObject({ leader: away, moved: true });
    await new Promise((resolve) => setTimeout(resolve, 1500)); // several heartbeat intervals
    expect((await statusJson()).leader).toBe(away);
  });
});
