import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { type Transaction, TransactionProducer } from '../src/client/transaction.js';
import { isLmqError } from '../src/util/errors.js';
import { prng } from './broker-helpers.js';
import type { TxCheck, TxSummary } from '../src/protocol/index.js';
import { until } from '../src/util/until.js';
import { readWholeQueue, runCli } from './process-helpers.js';

// Transactional messages on a real three-node cluster: half messages survive a SIGKILL of the
// leader and commit through the next one; check-back counts are replicated, so the next leader
// goes on counting and a live checker of the group ends the transaction; with nobody to answer,
// the leader rolls it back after transaction.maxChecks; and the CLI's produce --transaction,
// txcheck and tx list do what CONTRACT.md says.

const TX = { checkAfterMs: 1_000, checkIntervalMs: 1_000, maxChecks: 6 };

let cluster: LocalCluster;
let client: LedgerClient;
beforeAll(async () => {
  cluster = await LocalCluster.create({ transaction: TX });
  cluster.startAll();
  await cluster.leader();
  client = cluster.client();
  for (const topic of ['orders', 'payments', 'cli-tx', 'stress']) await client.call({ op: 'createTopic', topic, queues: 2 });
});
afterAll(async () => {
  client.close();
  await cluster.dispose();
});

const bodiesOf = async (topic: string) => (await Promise.all([0, 1].map((q) => readWholeQueue(client, topic, q)))).flat().map((m) => Buffer.from(m.body).toString()).sort();
const openTx = async (txId: string): Promise<TxSummary | undefined> => (await client.call({ op: 'txList' })).transactions.find((tx) => tx.txId === txId);

/** Restarts every node that is down, so the next test starts with three. */
async function restartKilled(): Promise<void> {
  for (const id of ['n1', 'n2', 'n3']) if (!cluster.isRunning(id)) cluster.start(id);
  await cluster.leader();
}

const cli = (args: string[], input?: string) => runCli(cluster.configPath, args, 60_000, input ?? '');

const jsonLines = (text: string) => text.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('transactions – a real cluster', () => {
  it('half messages survive a leader kill between the sends and the commit, which goes through the new leader', async () => {
    const producer = new TransactionProducer(client, { producerGroup: 'shop', timeoutMs: 20_000 });
    const tx = producer.beginTransaction();
    const a = await tx.send('orders', { body: Buffer.from('order-1'), key: 'o1' });
    const b = await tx.send('orders', { body: Buffer.from('order-2'), key: 'o2' });
    expect(new Set([a.queueId, b.queueId])).toEqual(new Set([0, 1]));
    expect(await bodiesOf('orders')).toEqual([]);
    expect(await openTx(tx.txId)).toMatchObject({ producerGroup: 'shop', messages: 2, topics: ['orders'] });

    const leader = await cluster.leader();
    await cluster.kill(leader.id);
    await cluster.leader([leader.id]);
    const ended = await tx.commit();
    expect(ended).toMatchObject({ txId: tx.txId, outcome: 'commit' });
    expect(ended.placed.map((p) => [p.msgId, p.queueId, p.offset])).toEqual([[a.msgId, a.queueId, 0], [b.msgId, b.queueId, 0]]);
    expect(await bodiesOf('orders')).toEqual(['order-1', 'order-2']);
    // Ending again is idempotent: the first outcome, nothing placed twice; the other way is refused.
    expect(await client.call({ op: 'txEnd', producerGroup: 'shop', txId: tx.txId, outcome: 'commit', source: 'producer' })).toEqual({ outcome: 'commit', duplicate: true, placed: [] });
    expect(await client.call({ op: 'txEnd', producerGroup: 'shop', txId: tx.txId, outcome: 'rollback', source: 'check' })).toMatchObject({ outcome: 'commit', duplicate: true });
    await expect(tx.rollback()).rejects.toMatchObject({ code: 'LMQ_TX_ENDED', retriable: false, indeterminate: false });
    expect(await bodiesOf('orders')).toEqual(['order-1', 'order-2']);
    expect(await openTx(tx.txId)).toBeUndefined();
    await restartKilled();
  });

  it('check-backs are counted on the leader and go on after a leader kill; a live checker of the group then commits', async () => {
    const crashed = new TransactionProducer(client, { producerGroup: 'billing' });
    const tx = crashed.beginTransaction();
    await tx.send('payments', { body: Buffer.from('pay-1') });
    // No live producer: the checks count anyway, once per checkIntervalMs.
    const counted = await until('a check-back counted', async () => ((await openTx(tx.txId))?.checks ?? 0) >= 1 ? openTx(tx.txId) : null, 10_000, 50);
    const leader = await cluster.leader();
    await cluster.kill(leader.id);
    await cluster.leader([leader.id]);
    const after = await until('the next leader counts on', async () => {
      const now = await openTx(tx.txId).catch(() => undefined);
      return now !== undefined && now.checks > counted!.checks ? now : null;
    }, 15_000, 50);
    expect(after.checks).toBeLessThan(TX.maxChecks);

    const answered: TxCheck[] = [];
    const responder = new TransactionProducer(client, {
      producerGroup: 'billing',
      checkPollWaitMs: 2_000,
      transactionChecker: (check) => {
        answered.push(check);
        return 'COMMIT';
      },
    });
    responder.start();
    try {
      await until('the checker committed it', async () => ((await bodiesOf('payments')).length > 0 ? true : null), 15_000, 50);
    } finally {
      await responder.stop();
    }
    expect(await bodiesOf('payments')).toEqual(['pay-1']);
    expect(answered[0]).toMatchObject({ txId: tx.txId, producerGroup: 'billing', messages: 1, halfMessages: [{ msgId: `${tx.txId}.0`, topic: 'payments' }] });
    expect(Buffer.from(answered[0]!.halfMessages[0]!.body).toString()).toBe('pay-1');
    expect(await openTx(tx.txId)).toBeUndefined();
    // The crashed producer's own late commit learns the outcome; its rollback would be refused.
    expect(await tx.commit()).toMatchObject({ outcome: 'commit', duplicate: true, placed: [{ msgId: `${tx.txId}.0`, offset: 0 }] });
    await restartKilled();
  });

  it('with no live producer, the leader rolls a transaction back after maxChecks check-backs (tx list shows the counts)', async () => {
    const produced = await cli(['produce', '--topic', 'cli-tx', '--transaction', 'none', '--producer-group', 'nobody', '--json'], 'lost-1\nlost-2\n');
    expect(produced.code).toBe(0);
    const halves = jsonLines(produced.stdout);
    expect(halves).toHaveLength(2);
    expect(halves[0]).toMatchObject({ queue: expect.any(Number), offset: null, outcome: 'open' });
    const txId = halves[0]!.txId as string;
    const listed = await until('tx list shows a counted check', async () => {
      const rows = jsonLines((await cli(['tx', 'list', '--json'])).stdout).filter((row) => row.txId === txId);
      return rows.length === 1 && (rows[0]!.checks as number) >= 1 ? rows[0]! : null;
    }, 10_000, 100);
    expect(Object.keys(listed)).toEqual(['txId', 'producerGroup', 'producerId', 'topics', 'messages', 'storedAtMs', 'checks', 'nextCheckAtMs']);
    expect(listed).toMatchObject({ producerGroup: 'nobody', topics: ['cli-tx'], messages: 2 });
    expect((await cli(['tx', 'list'])).stdout).toMatch(new RegExp(`${txId}\\s+nobody\\s+cli-tx\\s+2`));
    const windowMs = TX.checkAfterMs + (TX.maxChecks + 4) * TX.checkIntervalMs;
    await until('the rollback after maxChecks', async () => ((await openTx(txId)) === undefined ? true : null), windowMs, 100);
    expect(await client.call({ op: 'txEnd', producerGroup: 'nobody', txId, outcome: 'commit', source: 'producer' })).toMatchObject({ outcome: 'rollback', duplicate: true });
    expect(await bodiesOf('cli-tx')).toEqual([]);
  });

  it('produce --transaction commit|rollback and txcheck answer as CONTRACT.md says; bad usage is exit 2', async () => {
    const committed = await cli(['produce', '--topic', 'cli-tx', '--transaction', 'commit', '--producer-group', 'cli', '--json'], 'c-1\nc-2\nc-3\n');
    expect(committed.code).toBe(0);
    const acks = jsonLines(committed.stdout);
    expect(acks.map((a) => a.outcome)).toEqual(['commit', 'commit', 'commit']);
    expect(acks.every((a) => typeof a.offset === 'number')).toBe(true);
    expect(await bodiesOf('cli-tx')).toEqual(['c-1', 'c-2', 'c-3']);

    const rolled = await cli(['produce', '--topic', 'cli-tx', '--transaction', 'rollback', '--producer-group', 'cli'], 'r-1\nr-2\n');
    expect(rolled).toMatchObject({ code: 0, stdout: expect.stringMatching(/^2 messages rolled back in transaction \S+\n$/) });

    const open = await cli(['produce', '--topic', 'cli-tx', '--transaction', 'none', '--producer-group', 'late', '--json'], 'n-1\n');
    const txId = jsonLines(open.stdout)[0]!.txId as string;
    // A responder started after the producer exited answers its check-backs.
    const answered = await cli(['txcheck', '--producer-group', 'late', '--answer', 'commit', '--json', '--timeout', String(TX.checkAfterMs + 4 * TX.checkIntervalMs)]);
    expect(answered.code).toBe(0);
    expect(jsonLines(answered.stdout)).toContainEqual(expect.objectContaining({ txId, producerGroup: 'late', answer: 'commit', outcome: 'commit', messages: 1 }));
    expect(await bodiesOf('cli-tx')).toEqual(['c-1', 'c-2', 'c-3', 'n-1']);

    const usage = [
      ['produce', '--topic', 'cli-tx', '--transaction', 'commit'],
      ['produce', '--topic', 'cli-tx', '--transaction', 'commit', '--producer-group', 'cli', '--delay-ms', '100'],
      ['produce', '--topic', 'cli-tx', '--transaction', 'maybe', '--producer-group', 'cli'],
      ['txcheck', '--producer-group', 'cli'],
    ];
    for (const args of usage) {
      const refused = await cli(args, 'x\n');
      expect(refused.code, args.join(' ')).toBe(2);
      expect(refused.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    expect((await cli(['tx', 'list', '--json'])).stdout).toBe('');
  });

  it('under leader kills, with producers that commit, roll back or die and a responder for the dead: a commit is all its messages in one entry, a rollback none, nothing is visible before its commit', async () => {
    interface Tracked { ok: string[]; maybe: string[]; outcome: 'commit' | 'rollback' | 'unknown' | null; commitInvokedMs: number | null; byCheck: boolean }
    const txs = new Map<string, Tracked>();
    const firstSeenMs = new Map<string, number>();
    const random = prng(16);
    const stopAtMs = performance.now() + 8_000;
    const track = (txId: string) => txs.get(txId) ?? txs.set(txId, { ok: [], maybe: [], outcome: null, commitInvokedMs: null, byCheck: false }).get(txId)!;
    const learn = (t: Tracked, run: () => Promise<unknown>, outcome: 'commit' | 'rollback') =>
      run().then(
        () => void (t.outcome = outcome),
        (error: unknown) => void (t.outcome = isLmqError(error, 'LMQ_TX_ENDED') ? (error.details['outcome'] as 'commit' | 'rollback') : 'unknown'),
      );
    // Dead producers' transactions: committed when their id's last digit is even.
    const responder = new TransactionProducer(client, {
      producerGroup: 'stress', checkPollWaitMs: 1_000,
      transactionChecker: (check) => {
        const commit = Number(check.txId.at(-1)) % 2 === 0;
        if (commit) track(check.txId).commitInvokedMs ??= performance.now();
        return commit ? 'COMMIT' : 'ROLLBACK';
      },
      onCheck: (check, _state, outcome) => Object.assign(track(check.txId), { outcome, byCheck: true }),
    });
    responder.start();
    const producerLoop = async () => {
      const producer = new TransactionProducer(client, { producerGroup: 'stress', timeoutMs: 15_000 });
      while (performance.now() < stopAtMs) {
        const tx: Transaction = producer.beginTransaction();
        const t = track(tx.txId);
        let sendsOk = true;
        for (let i = 0; i < 1 + Math.floor(random() * 3) && sendsOk; i++) {
          const body = `${tx.txId}/${i}`;
          sendsOk = await tx.send('stress', { body: Buffer.from(body) }).then(() => t.ok.push(body) > 0, () => t.maybe.push(body) < 0);
        }
        const fate = random();
        if (!sendsOk || fate < 0.25) continue; // dies: the responder decides
        if (fate < 0.75) {
          t.commitInvokedMs ??= performance.now();
          await learn(t, () => tx.commit(), 'commit');
        } else await learn(t, () => tx.rollback(), 'rollback');
      }
    };
    const poller = async () => {
      while (performance.now() < stopAtMs + 2_000) {
        const seen = await bodiesOf('stress').catch(() => []);
        const nowMs = performance.now();
        for (const body of seen) if (!firstSeenMs.has(body)) firstSeenMs.set(body, nowMs);
        await new Promise((done) => setTimeout(done, 100));
      }
    };
    const nemesis = async () => {
      for (const atMs of [2_000, 5_000]) {
        await new Promise((done) => setTimeout(done, Math.max(0, stopAtMs - 8_000 + atMs - performance.now())));
        const leader = await cluster.leader();
        await cluster.kill(leader.id);
        await cluster.leader([leader.id]);
        cluster.start(leader.id);
      }
    };
    await Promise.all([producerLoop(), producerLoop(), producerLoop(), poller(), nemesis()]);
    await until('every transaction ended', async () => ((await client.call({ op: 'txList' })).transactions.length === 0 ? true : null), 40_000, 200);
    await responder.stop();
    await restartKilled();

    const drained = await Promise.all([0, 1].map((q) => readWholeQueue(client, 'stress', q)));
    const stored = drained.flat().map((m) => ({ body: Buffer.from(m.body).toString(), logIndex: m.logIndex }));
    expect(new Set(stored.map((m) => m.body)).size).toBe(stored.length);
    const byBody = new Map(stored.map((m) => [m.body, m.logIndex]));
    const seen = { commit: 0, rollback: 0, byCheck: 0 };
    for (const [txId, t] of txs) {
      const present = [...t.ok, ...t.maybe].filter((body) => byBody.has(body));
      // All or none: every acknowledged half send, in one commit entry.
      if (present.length > 0) {
        expect(t.ok.every((body) => byBody.has(body)), txId).toBe(true);
        expect(new Set(present.map((body) => byBody.get(body))).size, txId).toBe(1);
        for (const body of present) expect(firstSeenMs.get(body) ?? Infinity, `${body} seen before its commit`).toBeGreaterThanOrEqual(t.commitInvokedMs ?? Infinity);
      }
      if (t.outcome === 'commit') expect(present.length, txId).toBeGreaterThan(0);
      if (t.outcome === 'rollback') expect(present, txId).toEqual([]);
      if (t.outcome === 'commit' || t.outcome === 'rollback') seen[t.outcome]++;
      if (t.byCheck) seen.byCheck++;
    }
    expect(seen.commit).toBeGreaterThan(0);
    expect(seen.rollback).toBeGreaterThan(0);
    expect(seen.byCheck).toBeGreaterThan(0);
  });
});
