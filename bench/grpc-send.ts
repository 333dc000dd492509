// Send throughput and latency through the RocketMQ 5 gRPC endpoint vs the native client
// (`npm run bench:grpc -- [seconds]`, issue 19): on a local three-node cluster (sync flush,
// majority), 128 B messages for `seconds` (default 10) per run, with 1 and with 64 sends in
// flight: the official Node.js client (rocketmq-client-nodejs 1.0.8, a devDependency) against
// a follower's gRPC endpoint, and ledgermq's own Producer. Reports msgs/s and the p50/p99 of a
// send's acknowledgement; writes bench/results/grpc-send.json with the machine beside them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'hdr-histogram-js';
import { Producer as RocketProducer } from 'rocketmq-client-nodejs';
import { Producer } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { describeMachine, machineContext } from './node-sampler.js';

const TOPIC = 'bench';
const SECONDS = Number(process.argv[2] ?? 10);
const BODY = Buffer.alloc(128, 'x');
const IN_FLIGHTS = [1, 64] as const;
const RESULT_PATH = join(import.meta.dirname, '..', '..', 'bench', 'results', 'grpc-send.json');
const silent = { info: () => undefined, warn: () => undefined, error: (...a: unknown[]) => console.error(...a) };

interface Result {
  readonly client: 'grpc' | 'native';
  readonly inFlight: number;
  readonly msgsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** Runs `inFlight` loops of `send` for SECONDS; each loop sends its next message when the last is acknowledged. */
async function measure(client: Result['client'], inFlight: number, send: () => Promise<unknown>): Promise<Result> {
  const histogram = build();
  const endMs = performance.now() + SECONDS * 1000;
  let sent = 0;
  const loop = async () => {
    while (performance.now() < endMs) {
      const startMs = performance.now();
      await send();
      histogram.recordValue(Math.max(1, Math.round((performance.now() - startMs) * 1000)));
      sent++;
    }
  };
  const startMs = performance.now();
  await Promise.all(Array.from({ length: inFlight }, loop));
  const result = { client, inFlight, msgsPerSec: Math.round(sent / ((performance.now() - startMs) / 1000)), p50Ms: histogram.getValueAtPercentile(50) / 1000, p99Ms: histogram.getValueAtPercentile(99) / 1000 };
  console.error(`[grpc-send] ${JSON.stringify(result)}`);
  return result;
}

async function main(): Promise<void> {
  const cluster = await LocalCluster.create({}, { grpc: true });
  try {
    cluster.startAll();
    const leader = await cluster.leader();
    const admin = cluster.client(60_000);
    await admin.call({ op: 'createTopic', topic: TOPIC, queues: 4 });
    const follower = cluster.config.nodes.find((n) => n.id !== leader.id)!;
    const results: Result[] = [];
    const rocket = new RocketProducer({ endpoints: `${follower.host}:${follower.grpcPort}`, namespace: '', topics: [TOPIC], logger: silent });
    await rocket.startup();
    for (const inFlight of IN_FLIGHTS) results.push(await measure('grpc', inFlight, () => rocket.send({ topic: TOPIC, body: BODY })));
    await rocket.shutdown();
    const native = new Producer(admin, 60_000);
    for (const inFlight of IN_FLIGHTS) results.push(await measure('native', inFlight, () => native.send(TOPIC, { body: BODY })));
    const machine = machineContext();
    writeFileSync(RESULT_PATH, `${JSON.stringify({ seconds: SECONDS, bodyBytes: BODY.byteLength, grpcEndpoint: 'a follower', machine: describeMachine(machine), context: machine, results }, null, 2)}\n`);
    console.log(JSON.stringify({ results }));
  } finally {
    await cluster.dispose();
  }
}

await main();
