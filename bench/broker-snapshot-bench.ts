// Times the broker state machine's snapshot and retention work on a large state: 10,000
// producers, 100,000 queues and 100,000 group offset rows, one message per producer. Reports
// how long beginSnapshot() holds up applies, the longest stretch between two chunks (applies
// run in between), the payload, the restore with its rebuild, a truncateLog over every queue
// and the garbage collection after it.
// Run after a build: `node dist/bench/broker-snapshot-bench.js`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrokerCommand } from '../src/broker/commands.js';
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import { MemoryLog } from '../test/broker-helpers.js';

// A smaller state for a quick look: `node dist/bench/broker-snapshot-bench.js 0.1`.
const SCALE = Number(process.argv[2] ?? 1);
const TOPICS = Math.max(1, Math.round(100 * SCALE));
const QUEUES_PER_TOPIC = 1000;
const PRODUCERS = Math.max(1, Math.round(10_000 * SCALE));
const OFFSETS_PER_COMMIT = 4000;

function buildCommands(): BrokerCommand[] {
  const commands: BrokerCommand[] = [];
  for (let t = 0; t < TOPICS; t++) commands.push({ kind: 'createTopic', topic: `t${t}`, queues: QUEUES_PER_TOPIC });
  for (let p = 0; p < PRODUCERS; p++) {
    const queue = p % (TOPICS * QUEUES_PER_TOPIC);
    const message = { msgId: `m${p}`, topic: `t${queue % TOPICS}`, queueId: Math.floor(queue / TOPICS) % QUEUES_PER_TOPIC, body: new Uint8Array(64), keys: [`k${p}`] };
    commands.push({ kind: 'produce', producerId: `producer-${p}`, seq: 1, timestampMs: 1_000 + p, messages: [message] });
  }
  const positions = Array.from({ length: TOPICS * QUEUES_PER_TOPIC }, (_, i) => ({ topic: `t${i % TOPICS}`, queueId: Math.floor(i / TOPICS), offset: 0 }));
  for (let i = 0; i < positions.length; i += OFFSETS_PER_COMMIT) {
    commands.push({ kind: 'commitOffsets', group: `g${i / OFFSETS_PER_COMMIT}`, offsets: positions.slice(i, i + OFFSETS_PER_COMMIT) });
  }
  return commands;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-snapshot-bench-'));
  const log = new MemoryLog();
  for (const command of buildCommands()) log.append(command);
  const machine = BrokerStateMachine.open({ dir: join(dir, 'a'), log });
  const restored = BrokerStateMachine.open({ dir: join(dir, 'b'), log });
  try {
    const all = log.all();
    for (let i = 0; i < all.length; i += 1000) machine.apply(all.slice(i, i + 1000));
    const index = machine.appliedIndex();
    // A few applies' worth of buffered records, as under load.
    for (let i = 0; i < 3; i++) machine.apply([log.append({ kind: 'produce', producerId: `producer-${i}`, seq: 2, timestampMs: 99_999, messages: [{ msgId: `late${i}`, topic: 't0', queueId: 0, body: new Uint8Array(64) }] })]);
    let started = performance.now();
    const snapshot = machine.beginSnapshot();
    const beginMs = performance.now() - started;
    const chunks: Uint8Array[] = [];
    let longestMs = 0;
    let last = performance.now();
    started = last;
    for await (const chunk of snapshot.chunks()) {
      longestMs = Math.max(longestMs, performance.now() - last);
      chunks.push(chunk);
      machine.apply([log.append(null)]); // applies go on between chunks
      last = performance.now();
    }
    const encodeMs = performance.now() - started;
    const payload = Buffer.concat(chunks);
    console.error(`encoded ${payload.byteLength} bytes in ${chunks.length} chunks`);
    started = performance.now();
    await restored.restoreSnapshot(snapshot.index, payload, log);
    const restoreMs = performance.now() - started;
    console.error(`restored in ${round(restoreMs)} ms`);
    started = performance.now();
    const truncate = log.append({ kind: 'truncateLog', firstIndex: TOPICS + PRODUCERS / 2 });
    const noops = log.slice(index + 1, truncate.index);
    machine.apply(noops.filter((entry) => entry.index > machine.appliedIndex()));
    started = performance.now();
    machine.apply([truncate]);
    const truncateMs = performance.now() - started;
    started = performance.now();
    let steps = 0;
    while (machine.collectGarbage(1024)) steps++;
    const garbageMs = performance.now() - started;
    console.log(JSON.stringify({
      state: { producers: PRODUCERS, queues: TOPICS * QUEUES_PER_TOPIC, offsetRows: TOPICS * QUEUES_PER_TOPIC, index },
      beginSnapshotMs: round(beginMs),
      longestBetweenChunksMs: round(longestMs),
      encodeMs: round(encodeMs),
      chunks: chunks.length,
      payloadBytes: payload.byteLength,
      restoreMs: round(restoreMs),
      truncateLogApplyMs: round(truncateMs),
      garbage: { messages: PRODUCERS / 2, steps, totalMs: round(garbageMs), perStepMs: round(garbageMs / Math.max(1, steps)) },
      retainedFromIndex: machine.retainedFromIndex(),
    }));
  } finally {
    await Promise.all([machine.close(), restored.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
