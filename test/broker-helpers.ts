// Shared by the broker tests: an in-memory committed log (the CommittedLogReader port, built
// from the same entries the tests apply), temp dirs, and a full query-level dump of a state.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrokerCommand, encodeCommand } from '../src/broker/commands.js';
import { type BrokerSnapshot, BrokerStateMachine, type CommittedLogReader } from '../src/broker/state-machine.js';
import { type Entry, entryBytes, EntryType } from '../src/raft/types.js';

export class MemoryLog implements CommittedLogReader {
  private readonly log: Entry[] = [];
  /** Calls to entries(), to check that reads go through the log. */
  reads = 0;

  /** Appends a command (or a noop for null) as the next entry, in term `term`. */
  append(command: BrokerCommand | null, term = 1): Entry {
    const entry: Entry =
      command === null
        ? { index: this.log.length + 1, term, type: EntryType.Noop, data: new Uint8Array(0) }
        : { index: this.log.length + 1, term, type: EntryType.Normal, data: encodeCommand(command) };
    this.log.push(entry);
    return entry;
  }

  all(): Entry[] {
    return [...this.log];
  }

  /** Entries [lo, hi) as Raft would hand them to apply. */
  slice(lo: number, hiExclusive: number): Entry[] {
    return this.log.slice(lo - 1, hiExclusive - 1);
  }

  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    this.reads++;
    if (lo < 1 || hiExclusive - 1 > this.log.length) throw new Error(`entries ${lo}..${hiExclusive} not in log of ${this.log.length}`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hiExclusive; index++) {
      const entry = this.log[index - 1] as Entry;
      if (out.length > 0 && bytes + entryBytes(entry) > maxBytes) break;
      bytes += entryBytes(entry);
      out.push(entry);
    }
    return out;
  }
}

/** The log as a node holds it after retention: entries below firstIndex are gone. */
export class RetainedLog implements CommittedLogReader {
  constructor(private readonly log: MemoryLog, private readonly firstIndex: number) {}

  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    if (lo < this.firstIndex) throw new Error(`entry ${lo} is below the retained log (from ${this.firstIndex})`);
    return this.log.entries(lo, hiExclusive, maxBytes);
  }
}

/** A snapshot's whole payload; `between` runs after each chunk. */
export async function payloadOf(snapshot: BrokerSnapshot, between: () => void = () => undefined): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of snapshot.chunks()) {
    chunks.push(chunk);
    between();
  }
  return Buffer.concat(chunks);
}

/** State machines opened in subdirectories of one temp dir, all closed by closeAll(). */
export class Machines {
  private readonly opened: BrokerStateMachine[] = [];

  constructor(private readonly dir: string) {}

  open(name: string, log: CommittedLogReader): BrokerStateMachine {
    const machine = BrokerStateMachine.open({ dir: join(this.dir, name), log });
    this.opened.push(machine);
    return machine;
  }

  async closeAll(): Promise<void> {
    for (const machine of this.opened.splice(0)) await machine.close();
  }
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Everything a client can see, through the public queries only. */
export function dumpState(machine: BrokerStateMachine, keysByTopic: Map<string, Set<string>> = new Map()): unknown {
  const topics = machine.topics();
  const queues = topics.flatMap(({ topic, queues: count }) =>
    Array.from({ length: count }, (_, queueId) => {
      const range = machine.queueRange(topic, queueId);
      const messages = [];
      for (let offset = range.minOffset; offset < range.nextOffset; ) {
        const batch = machine.read(topic, queueId, offset, 100, 1024 * 1024);
        messages.push(...batch.map((m) => ({ ...m, body: Buffer.from(m.body).toString('hex') })));
        offset += batch.length;
      }
      return { topic, queueId, range, messages };
    }),
  );
  const groups = machine.groups().map((group) => ({ group, lag: machine.groupLag(group) }));
  const keys = [...keysByTopic].flatMap(([topic, keySet]) =>
    [...keySet].sort().map((key) => ({ topic, key, found: machine.lookupByKey(topic, key, 1024).map((m) => [m.queueId, m.offset]) })),
  );
  return { appliedIndex: machine.appliedIndex(), topics, queues, groups, keys };
}

export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** A small deterministic PRNG (mulberry32) so a workload is the same in every process. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A deterministic mixed workload (null = noop): topics, batched produces from several producers
 * with retries of old seqs, keys, tags, and offset commits.
 */
export function workload(seed: number, count: number): (BrokerCommand | null)[] {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const topics = [
    { topic: 'orders', queues: 4 },
    { topic: 'audit', queues: 1 },
  ];
  const commands: (BrokerCommand | null)[] = topics.map((t) => ({ kind: 'createTopic', ...t }));
  const sent: BrokerCommand[] = [];
  const seqs = new Map<string, number>();
  for (let i = 0; commands.length < count; i++) {
    const roll = random();
    if (roll < 0.05) commands.push(null);
    else if (roll < 0.15) {
      const { topic, queues } = pick(topics);
      commands.push({ kind: 'commitOffsets', group: pick(['g1', 'g2']), offsets: [{ topic, queueId: Math.floor(random() * queues), offset: Math.floor(random() * 20) }] });
    } else if (roll < 0.22 && sent.length > 0) commands.push(pick(sent));
    else {
      const producerId = pick(['p1', 'p2', 'p3']);
      const seq = (seqs.get(producerId) ?? 0) + 1;
      seqs.set(producerId, seq);
      const messages = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, j) => {
        const { topic, queues } = pick(topics);
        const body = Uint8Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256));
        return { msgId: `${producerId}-${seq}-${j}`, topic, queueId: Math.floor(random() * queues), body, tag: pick(['A', 'B']), keys: [`k${Math.floor(random() * 10)}`] };
      });
      const command: BrokerCommand = { kind: 'produce', producerId, seq, timestampMs: 1000 + i, messages };
      sent.push(command);
      commands.push(command);
    }
  }
  return commands;
}

export const WORKLOAD_KEYS = new Map([
  ['orders', new Set(Array.from({ length: 10 }, (_, i) => `k${i}`))],
  ['audit', new Set(Array.from({ length: 10 }, (_, i) => `k${i}`))],
]);

/** Applies entries [from, to] of `log` in batches of `batchEntries`; returns every result. */
export function applyRange(machine: BrokerStateMachine, log: MemoryLog, from: number, to: number, batchEntries: number): unknown[] {
  const results: unknown[] = [];
  for (let lo = from; lo <= to; lo += batchEntries) {
    results.push(...machine.apply(log.slice(lo, Math.min(lo + batchEntries, to + 1))));
  }
  return results;
}
