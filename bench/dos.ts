// Client-port denial-of-service benchmark (`npm run bench:dos`), the measured proof of issue 14's
// connection hygiene: on a fresh local three-node cluster (default config: sync flush, majority,
// 50 ms ticks), each attack of src/bench/dos.ts runs against the leader's client port while a
// legitimate client on the same address produces one small message every 50 ms:
//   idle      — 10,000 connections opened and held, sending nothing;
//   slowloris — 1,030 connections holding one frame-header byte each;
//   pulls     — one connection pipelining 256 pulls of 8 MiB (from a queue holding 12 MB) and never reading.
// Reported per attack: the legitimate produce latency (p50/p99/max) and failures during it,
// whether the leader stayed leader in the same term, the leader's RSS before and at its peak,
// the leader's event-loop delay (max over the last ~10 s), and how many attack connections the
// leader closed. Writes bench/results/dos.json with the load average beside the figures.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Attack, fillQueue, idleConnections, partialHeaderConnections, produceWhile, unreadPulls } from '../src/bench/dos.js';
import { rss } from '../src/bench/measure.js';
import { Producer } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';

const HOST = '127.0.0.1';
const MIB = 1024 * 1024;
/** How long the legitimate client keeps producing once an attack is in place. */
const SERVED_FOR_MS = 8_000;
const PRODUCE_EVERY_MS = 50;

interface AttackSpec {
  readonly name: string;
  readonly start: (port: number) => Promise<Attack>;
}

const ATTACKS: readonly AttackSpec[] = [
  { name: 'idle 10000', start: (port) => idleConnections(HOST, port, 10_000) },
  { name: 'slowloris 1030', start: (port) => partialHeaderConnections(HOST, port, 1_030) },
  { name: 'unread pulls 256 x 8 MiB', start: (port) => unreadPulls(HOST, port, { topic: 'big', queueId: 0, maxBytes: 8 * MIB }, 256) },
];

async function main(): Promise<void> {
  const cluster = await LocalCluster.create();
  const results: Record<string, unknown>[] = [];
  try {
    cluster.startAll();
    const leader = await cluster.leader([], 30_000);
    const client = cluster.client(20_000);
    await client.call({ op: 'createTopic', topic: 'legit', queues: 4 });
    await client.call({ op: 'createTopic', topic: 'big', queues: 1 });
    await fillQueue(client, 'big', 12, 1_000_000);
    await new Producer(client, 10_000).send('legit', { body: Buffer.from('warm-up') });
    const port = cluster.config.nodes.find((n) => n.id === leader.id)!.clientPort;
    const pid = cluster.pid(leader.id);
    for (const spec of ATTACKS) {
      const before = await cluster.status(leader.id);
      const rssBeforeMb = Math.round((rss(pid)?.totalBytes ?? Number.NaN) / 1e6);
      process.stderr.write(`${spec.name}: starting (leader ${leader.id}, term ${before?.term}, RSS ${rssBeforeMb} MB)\n`);
      const attackStartedMs = performance.now();
      const attacking = spec.start(port);
      const served = produceWhile(client, 'legit', SERVED_FOR_MS, PRODUCE_EVERY_MS, pid);
      const attack = await attacking;
      const attackOpenMs = Math.round(performance.now() - attackStartedMs);
      const during = await served;
      const after = await cluster.status(leader.id);
      const result = {
        attack: spec.name,
        attackOpenMs,
        produced: during.produced,
        failed: during.failed,
        firstError: during.firstError,
        produceP50Ms: during.latency.p50Ms,
        produceP99Ms: during.latency.p99Ms,
        produceMaxMs: during.latency.maxMs,
        leaderStayed: after?.role === 'leader' && after.term === before?.term,
        termBefore: before?.term ?? null,
        termAfter: after?.term ?? null,
        leaderRssBeforeMb: rssBeforeMb,
        leaderRssMaxMb: during.maxRssMb,
        leaderEventLoopDelayMaxMs: after?.eventLoopDelayMaxMs ?? null,
        attackConnectionsClosedByLeader: attack.closedByServer(),
      };
      results.push(result);
      process.stderr.write(`${JSON.stringify(result)}\n`);
      attack.stop();
      await sleep(2_000); // let the leader settle before the next attack
    }
  } finally {
    await cluster.dispose();
  }
  const document = { machine: { loadAverage1m: loadavg()[0] }, servedForMs: SERVED_FOR_MS, produceEveryMs: PRODUCE_EVERY_MS, results };
  const path = join('bench', 'results', 'dos.json');
  writeFileSync(path, `${JSON.stringify(document, null, 2)}\n`);
  const rows = results.map((r) => `${String(r['attack']).padEnd(26)} ok ${r['produced']} failed ${r['failed']} p50 ${r['produceP50Ms']} ms p99 ${r['produceP99Ms']} ms max ${r['produceMaxMs']} ms; leader stayed ${r['leaderStayed']}; RSS ${r['leaderRssBeforeMb']} → ${r['leaderRssMaxMb']} MB; loop delay max ${r['leaderEventLoopDelayMaxMs']} ms`);
  process.stdout.write(`${rows.join('\n')}\nwritten to ${path}\n`);
}

await main();
