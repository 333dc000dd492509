// The broker state machine alone, in this process (`npm run bench:apply-read [ROUNDS]
// [MESSAGES_PER_PRODUCE] [PRODUCES_PER_ENTRY]`): what applying and reading cost per message on
// one node, without Raft, sockets or fsync — the part of a produce every node pays, and the
// part of a consume the leader pays. 96,000 messages of 128 B over 8 queues (msgIds as the
// native producer names them) in produces of 32 messages (what a batching producer sends; 1 is
// what `--max-batch 1` sends), one produce per entry or PRODUCES_PER_ENTRY of them in a
// produceBatch entry (what the leader's batcher makes of produces that arrive while a round is
// out), applied as the node applies them, then the 8 queues read 32 messages at a time in turn
// (a consumer group reading side by side). Prints CPU microseconds per message of each phase,
// and the load.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrokerCommand, encodeCommand, encodeProduce, encodeProduceBatch } from '../src/broker/commands.js';
import { BrokerStateMachine, type CommittedLogReader } from '../src/broker/state-machine.js';
import { type Entry, EntryType } from '../src/raft/types.js';
import { assert } from '../src/util/assert.js';
import { countArgument } from './script.js';

const MESSAGES = 96_000;
const ROUNDS = countArgument(2, 'ROUNDS', 3);
const MESSAGES_PER_PRODUCE = countArgument(3, 'MESSAGES_PER_PRODUCE', 32);
const PRODUCES_PER_ENTRY = countArgument(4, 'PRODUCES_PER_ENTRY', 1);
const MESSAGES_PER_ENTRY = MESSAGES_PER_PRODUCE * PRODUCES_PER_ENTRY;
const ENTRIES = Math.ceil(MESSAGES / MESSAGES_PER_ENTRY);
/** Entries per apply call: 64 messages' worth (two batches of 32, or 64 one-message entries), one entry at least. */
const ENTRIES_PER_APPLY = MESSAGES_PER_ENTRY >= 32 ? 2 : Math.ceil(64 / MESSAGES_PER_ENTRY);
const QUEUES = 8;
const BODY_BYTES = 128;
const READ_MAX_MESSAGES = 32;

/** The committed log, in memory. */
class InMemoryLog implements CommittedLogReader {
  readonly log: Entry[] = [];
  append(command: BrokerCommand): Entry {
    return this.appendData(encodeCommand(command));
  }
  appendData(data: Uint8Array): Entry {
    const entry: Entry = { index: this.log.length + 1, term: 1, type: EntryType.Normal, data };
    this.log.push(entry);
    return entry;
  }
  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hiExclusive; index++) {
      const entry = this.log[index - 1]!;
      if (out.length > 0 && bytes + entry.data.byteLength > maxBytes) break;
      bytes += entry.data.byteLength;
      out.push(entry);
    }
    return out;
  }
}

function cpuUs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

function round(): { applyUsPerMsg: number; readUsPerMsg: number } {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-apply-read-'));
  const log = new InMemoryLog();
  const machine = BrokerStateMachine.open({ dir, log });
  try {
    machine.apply([log.append({ kind: 'createTopic', topic: 'bench', queues: QUEUES })]);
    const body = new Uint8Array(BODY_BYTES).fill(0x6d);
    const entries: Entry[] = [];
    let placed = 0;
    let seq = 0;
    for (let e = 0; e < ENTRIES; e++) {
      const produces = Array.from({ length: PRODUCES_PER_ENTRY }, () => {
        seq += 1;
        // As the producer names them: `<session>-<seq>`, and `.<position>` when it sends several.
        const msgIdOf = (i: number) => (MESSAGES_PER_PRODUCE === 1 ? `bench-producer-${seq}` : `bench-producer-${seq}.${i}`);
        const messages = Array.from({ length: MESSAGES_PER_PRODUCE }, (_, i) => ({ msgId: msgIdOf(i), topic: 'bench', queueId: placed++ % QUEUES, body }));
        return encodeProduce({ kind: 'produce', producerId: 'bench-producer', seq, timestampMs: Date.now(), messages, routedQueues: QUEUES });
      });
      entries.push(log.appendData(encodeProduceBatch(produces).data));
    }
    const applyStart = process.cpuUsage();
    for (let i = 0; i < entries.length; i += ENTRIES_PER_APPLY) machine.apply(entries.slice(i, i + ENTRIES_PER_APPLY));
    const applyUs = cpuUs(applyStart);
    const offsets = new Array<number>(QUEUES).fill(0);
    let read = 0;
    const readStart = process.cpuUsage();
    for (let progress = true; progress; ) {
      progress = false;
      for (let queue = 0; queue < QUEUES; queue++) {
        const got = machine.read('bench', queue, offsets[queue]!, READ_MAX_MESSAGES, 1 << 20);
        offsets[queue]! += got.length;
        read += got.length;
        progress ||= got.length > 0;
      }
    }
    const readUs = cpuUs(readStart);
    assert(read === placed, `read ${read} of ${placed} messages`);
    return { applyUsPerMsg: Math.round((applyUs / placed) * 10) / 10, readUsPerMsg: Math.round((readUs / read) * 10) / 10 };
  } finally {
    void machine.close().then(() => rmSync(dir, { recursive: true, force: true }));
  }
}

const rounds = Array.from({ length: ROUNDS }, round);
console.log(JSON.stringify({ messages: ENTRIES * MESSAGES_PER_ENTRY, messagesPerProduce: MESSAGES_PER_PRODUCE, producesPerEntry: PRODUCES_PER_ENTRY, rounds, loadAvg1: Math.round(loadavg()[0]! * 10) / 10 }));
