import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { Producer } from '../src/client/producer.js';
import { until } from '../src/util/until.js';
import { readWholeQueue, runCli } from './process-helpers.js';

// Retry and dead letters on a real three-node cluster: a sendBack survives a SIGKILL of the
// leader (its retry copy appears once), the next failure past consumer.maxReconsumeTimes is a
// dead letter, and the CLI lists, resends (once) and counts them as CONTRACT.md says.

let cluster: LocalCluster;
let client: LedgerClient;
beforeAll(async () => {
  cluster = await LocalCluster.create({ delay: { levels: '100ms 200ms 300ms' }, consumer: { maxReconsumeTimes: 1 } });
  cluster.startAll();
  await cluster.leader();
  client = cluster.client();
  await client.call({ op: 'createTopic', topic: 'coupons', queues: 1 });
});
afterAll(async () => {
  await cluster.dispose();
});

const cli = (args: string[]) => runCli(cluster.configPath, args);
const readQueue = (topic: string) => readWholeQueue(client, topic);

describe('retry and dead letters – a real cluster', () => {
  it('a sendBack of an offset or topic the leader has not applied is retriable and does nothing', async () => {
    for (const where of [{ topic: 'coupons', queueId: 0, offset: 1_000 }, { topic: 'not-yet-there', queueId: 0, offset: 0 }]) {
      const refused = await client.call({ op: 'sendBack', group: 'early', ...where, msgId: 'm' }, 5_000).then(() => null, (e: unknown) => e);
      expect(refused).toMatchObject({ code: 'LMQ_UNAVAILABLE', retriable: true, indeterminate: false });
    }
    const { groups } = await client.call({ op: 'groups' });
    expect(groups.some((g) => g.group === 'early')).toBe(false);
  });

  it('refuses a user topic whose name starts with %', async () => {
    const made = await cli(['topic', 'create', '%RETRY%mine', '--queues', '1']);
    expect(made.code).toBe(2);
    expect(made.stderr.trim().split('\n')).toEqual([expect.stringMatching(/starts with "%", which is kept for the broker's own topics/)]);
    await expect(client.call({ op: 'createTopic', topic: '%DLQ%x', queues: 1 })).rejects.toMatchObject({ code: 'LMQ_BAD_INPUT' });
  });

  it('a sendBack survives a leader kill: its retry copy appears once; the next failure is a dead letter the CLI lists and resends once', async () => {
    const sent = await new Producer(client, 10_000).send('coupons', { body: Buffer.from('coupon-9'), key: 'user-9' });
    const request = { group: 'g', topic: 'coupons', queueId: 0, offset: sent.offset!, msgId: sent.msgId };
    const first = await client.sendBack(request);
    expect(first).toMatchObject({ target: 'retry', reconsumeTimes: 1, duplicate: false });
    const leader = await cluster.leader();
    await cluster.kill(leader.id);
    await cluster.leader([leader.id]);
    // The consumer's retry of its request after the failover: the broker has it already.
    expect(await client.sendBack(request)).toEqual({ ...first, duplicate: true });
    const retried = await until('the retry copy', async () => ((await readQueue('%RETRY%g')).length > 0 ? readQueue('%RETRY%g') : null), 10_000, 20);
    await new Promise((done) => setTimeout(done, 500));
    expect(await readQueue('%RETRY%g')).toHaveLength(1);
    expect(retried[0]).toMatchObject({ msgId: sent.msgId, reconsumeTimes: 1, origin: { msgId: sent.msgId, topic: 'coupons', queueId: 0, offset: sent.offset } });
    expect(retried[0]!.storeTimestampMs).toBeGreaterThanOrEqual(first.deliverAtMs!);
    // Past consumer.maxReconsumeTimes (1): the second failure goes to the DLQ with attempts 2.
    expect(await client.sendBack({ group: 'g', topic: '%RETRY%g', queueId: 0, offset: 0, msgId: sent.msgId, reason: 'coupon db down' })).toMatchObject({ target: 'dlq', reconsumeTimes: 2, deliverAtMs: null });
    await client.call({ op: 'commitOffsets', group: 'g', offsets: [{ topic: 'coupons', queueId: 0, offset: sent.offset! + 1 }, { topic: '%RETRY%g', queueId: 0, offset: 1 }] });

    const listed = await cli(['dlq', 'list', '--group', 'g', '--json']);
    expect(listed.code).toBe(0);
    const lines = listed.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(Object.keys(lines[0]!)).toEqual(['msgId', 'topic', 'queue', 'offset', 'reason', 'attempts', 'firstFailureMs', 'lastFailureMs', 'resent']);
    expect(lines[0]).toMatchObject({ msgId: sent.msgId, topic: 'coupons', queue: 0, offset: sent.offset, reason: 'coupon db down', attempts: 2, resent: false });
    expect(await cli(['dlq', 'list', '--group', 'nobody', '--json'])).toMatchObject({ code: 0, stdout: '' });
    expect(await cli(['dlq', 'list', '--group', 'nobody'])).toMatchObject({ code: 0, stdout: '' });

    const groups = JSON.parse((await cli(['group', 'list', '--json'])).stdout) as { groups: { group: string; queues: { topic: string }[]; dlq: unknown }[] };
    const g = groups.groups.find((row) => row.group === 'g')!;
    expect(g.queues.map((q) => q.topic).sort()).toEqual(['%RETRY%g', 'coupons']);
    expect(g.dlq).toEqual({ messages: 1, resent: 0 });

    expect((await cli(['dlq', 'resend', '--group', 'g'])).code).toBe(2);
    expect(JSON.parse((await cli(['dlq', 'resend', '--group', 'g', '--all', '--json'])).stdout)).toEqual({ resent: 1 });
    expect(JSON.parse((await cli(['dlq', 'resend', '--group', 'g', '--msg-id', sent.msgId, '--json'])).stdout)).toEqual({ resent: 0 });
    const resentCopy = (await readQueue('%RETRY%g'))[1];
    expect(resentCopy).toMatchObject({ msgId: sent.msgId, origin: { topic: 'coupons' } });
    expect(resentCopy?.reconsumeTimes).toBeUndefined();
    expect(JSON.parse((await cli(['dlq', 'list', '--group', 'g', '--json'])).stdout)).toMatchObject({ resent: true });
    const after = JSON.parse((await cli(['group', 'list', '--json'])).stdout) as { groups: { group: string; dlq: unknown }[] };
    expect(after.groups.find((row) => row.group === 'g')!.dlq).toEqual({ messages: 1, resent: 1 });
  });
});
