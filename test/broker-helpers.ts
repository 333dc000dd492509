// Shared by the broker tests: an in-memory committed log (the CommittedLogReader port, built
// from the same entries the tests apply), temp dirs, and a full query-level dump of a state.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrokerCommand, encodeCommand } from '../src/broker/commands.js';
import type { BrokerStateMachine, CommittedLogReader } from '../src/broker/state-machine.js';
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
