// /metrics of a real three-node cluster: the RocketMQ 5 and ledgermq_raft_* names with their
// labels, the cluster-wide figures on the leader only, and counters that move with traffic; the
// read-only console refusing a write with 403 naming the key; `group list` lag in seconds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './process-helpers.js';
import { type ConsoleCluster, startConsoleCluster } from './support/console-cluster.js';

let setup: ConsoleCluster;
beforeAll(async () => {
  setup = await startConsoleCluster(false);
});
afterAll(async () => {
  await setup?.cluster.dispose();
});

interface Sample { readonly name: string; readonly labels: Readonly<Record<string, string>>; readonly value: number }

/** The samples of a Prometheus text exposition (no escaped quotes in our label values). */
function parseMetrics(text: string): Sample[] {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).map((line) => {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not a sample line: ${line}`);
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    return { name: match[1]!, labels, value: Number(match[3]) };
  });
}

async function scrape(url: string): Promise<Sample[]> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  return parseMetrics(await response.text());
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

const RAFT_NAMES = ['ledgermq_raft_term', 'ledgermq_raft_role', 'ledgermq_raft_last_index', 'ledgermq_raft_commit_index', 'ledgermq_raft_applied_index', 'ledgermq_raft_elections_total', 'ledgermq_raft_fsync_duration_seconds_count', 'ledgermq_snapshots_total', 'ledgermq_retention_truncations_total'];

describe('metrics – /metrics of a three-node cluster', () => {
  it('exports the engine on every node and the cluster on the leader, and its counters move', async () => {
    const { cluster, consoles } = setup;
    const cli = (args: string[], input?: string) => runCli(cluster.configPath, args, 20_000, input);
    expect((await cli(['topic', 'create', 'orders', '--queues', '1'])).code).toBe(0);
    expect((await cli(['produce', '--topic', 'orders', '--count', '10', '--size', '100'])).code).toBe(0);
    expect((await cli(['consume', '--topic', 'orders', '--group', 'billing', '--max', '4', '--timeout', '5000'])).code).toBe(0);
    const leader = (await cluster.leader()).id;

    const before = Object.fromEntries(await Promise.all(Object.entries(consoles).map(async ([id, url]) => [id, await scrape(url)] as const)));
    for (const [id, samples] of Object.entries(before)) {
      for (const name of RAFT_NAMES) expect(value(samples, name, { node_id: id }), `${name} on ${id}`).toBeGreaterThanOrEqual(0);
      expect(value(samples, 'ledgermq_raft_role', { node_id: id, role: id === leader ? 'leader' : 'follower' })).toBe(1);
      expect(value(samples, 'ledgermq_raft_role', { node_id: id, role: 'candidate' })).toBe(0);
      // Only the leader speaks for the cluster: a scrape of all nodes counts each message once.
      expect(value(samples, 'rocketmq_messages_in_total', { topic: 'orders' }) !== undefined).toBe(id === leader);
      expect(value(samples, 'rocketmq_consumer_lag_messages', { topic: 'orders' }) !== undefined).toBe(id === leader);
    }
    const lead = before[leader]!;
    expect(value(lead, 'rocketmq_messages_in_total', { topic: 'orders', node_id: leader })).toBe(10);
    expect(value(lead, 'rocketmq_consumer_lag_messages', { topic: 'orders', consumer_group: 'billing', node_id: leader })).toBe(6);
    expect(value(lead, 'rocketmq_consumer_lag_latency', { topic: 'orders', consumer_group: 'billing' })).toBeGreaterThan(0);
    expect(value(lead, 'rocketmq_messages_out_total', { topic: 'orders' })).toBeGreaterThanOrEqual(4);
    expect(value(lead, 'rocketmq_throughput_in_total', { topic: 'orders' })).toBe(10 * 100);
    expect(value(lead, 'rocketmq_send_cost_time_count', { topic: 'orders' })).toBeGreaterThanOrEqual(1);
    expect(value(lead, 'rocketmq_send_cost_time_bucket', { topic: 'orders', le: '+Inf' })).toBe(value(lead, 'rocketmq_send_cost_time_count', { topic: 'orders' }));
    expect(value(lead, 'ledgermq_raft_follower_match_lag', { node_id: leader })).toBeGreaterThanOrEqual(0);
    const elections = Object.entries(before).reduce((sum, [id, samples]) => sum + value(samples, 'ledgermq_raft_elections_total', { node_id: id })!, 0);
    expect(elections).toBeGreaterThanOrEqual(1); // someone campaigned to become leader

    expect((await cli(['produce', '--topic', 'orders', '--count', '5', '--size', '10'])).code).toBe(0);
    const after = await scrape(consoles[leader]!);
    expect(value(after, 'rocketmq_messages_in_total', { topic: 'orders' })).toBe(15);
    expect(value(after, 'rocketmq_throughput_in_total', { topic: 'orders' })).toBe(10 * 100 + 5 * 10);
    expect(value(after, 'rocketmq_consumer_lag_messages', { topic: 'orders', consumer_group: 'billing' })).toBe(11);
    expect(value(after, 'rocketmq_send_cost_time_count', { topic: 'orders' })).toBeGreaterThan(value(lead, 'rocketmq_send_cost_time_count', { topic: 'orders' })!);
    expect(value(after, 'ledgermq_raft_fsync_duration_seconds_count')).toBeGreaterThan(value(lead, 'ledgermq_raft_fsync_duration_seconds_count')!);
    expect(value(after, 'ledgermq_raft_last_index')).toBeGreaterThan(value(lead, 'ledgermq_raft_last_index')!);
  });

  it('`group list` shows the backlog in seconds (text and --json), never negative', async () => {
    const { cluster } = setup;
    const json = await runCli(cluster.configPath, ['group', 'list', '--json'], 20_000);
    expect(json.code).toBe(0);
    const { groups } = JSON.parse(json.stdout) as { groups: { group: string; queues: { topic: string; lag: number; lagSeconds: number | null }[] }[] };
    const row = groups.find((g) => g.group === 'billing')!.queues.find((q) => q.topic === 'orders')!;
    expect(row.lag).toBe(11);
    expect(row.lagSeconds).toBeGreaterThan(0);
    expect(row.lagSeconds).toBeLessThan(120);
    const text = await runCli(cluster.configPath, ['group', 'list'], 20_000);
    expect(text.stdout.split('\n')[0]).toMatch(/lag\s+lag s$/);
    expect(text.stdout).toMatch(/billing\s+orders\/0\s+4\s+15\s+11\s+\d+\.\d$/m);
  });

  it('a read-only console refuses writes with 403 naming http.allowWrites, and still previews a reset', async () => {
    const url = Object.values(setup.consoles)[0]!;
    const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
    const refused = await post('/api/topics', { topic: 'nope', queues: 1 });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toContain('"http": { "allowWrites": true }');
    expect((await post('/api/groups/reset', { group: 'billing', topic: 'orders', to: 'first', dryRun: false })).status).toBe(403);
    const preview = await post('/api/groups/reset', { group: 'billing', topic: 'orders', to: 'first', dryRun: true });
    expect(preview.status).toBe(200);
    expect(await preview.json()).toEqual({ dryRun: true, offsets: [{ queueId: 0, committed: 4, start: 0 }] });
    const topics = (await runCli(setup.cluster.configPath, ['topic', 'list', '--json'], 20_000)).stdout;
    expect(topics).not.toContain('"nope"');
  });

  it("consoles answer each other's origins (CORS, preflight included) and no other", async () => {
    const [first, second] = Object.values(setup.consoles) as [string, string];
    const get = (origin: string) => fetch(`${first}/api/overview`, { headers: { origin }, signal: AbortSignal.timeout(5000) });
    expect((await get(second)).headers.get('access-control-allow-origin')).toBe(second);
    expect((await get('http://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
    const preflight = (origin: string) => fetch(`${first}/api/topics`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' }, signal: AbortSignal.timeout(5000) });
    const allowed = await preflight(second);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-methods')).toBe('GET, POST');
    const refused = await preflight('http://evil.example');
    expect(refused.status).toBe(404);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
  });
});
