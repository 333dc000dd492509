// The read path from consume queue entries to messages: fetches the commit log entries they
// point at through CommittedLogReader (runs of consecutive indexes in one call), decodes them
// and checks that each entry really holds the message the index says it does. An entry that
// placed messages is a produce, or one of the broker's own: deliverDue (delayed messages when
// due), sendBack (a dead-letter copy), dlqResend (a resent dead letter's retry copy) or txEnd
// (a committed transaction's messages).
import { EntryType } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../protocol/index.js';
import { carriedMessages, decodeCommand, type ProduceMessage } from './commands.js';
import type { CommittedLogReader } from './state-machine.js';
import type { ConsumeQueueRecord } from './store.js';

export type StoredMessage = ProduceMessage & { queueId: number; offset: number; logIndex: number; storeTimestampMs: number };

/** A consume queue entry together with the queue position it was found at. */
export interface QueueRef {
  topic: string;
  queueId: number;
  offset: number;
  at: ConsumeQueueRecord;
}

/** Bytes asked of the log per call: one maximal produce entry plus framing fits. */
const LOG_READ_CHUNK_BYTES = 2 * LIMITS.maxProduceBodyBytes;

/**
 * Decoded entries by log index, the most recently decoded kept up to maxBytes of entry data. A
 * produce spreads its messages over the topic's queues, so the consumers of those queues read
 * the same entries: each is decoded once, not once per queue. A committed entry never changes,
 * so an index names its entry for good (even across a snapshot install).
 */
export class DecodedEntries {
  private readonly entries = new Map<number, { readonly messages: readonly ProduceMessage[]; readonly bytes: number }>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {
    assert(Number.isSafeInteger(maxBytes) && maxBytes >= 0, 'the decoded entry cache has a byte bound');
  }

  get(logIndex: number): readonly ProduceMessage[] | undefined {
    return this.entries.get(logIndex)?.messages;
  }

  /** Keeps an entry's messages; `bytes` is its data's size (what the bound counts). */
  set(logIndex: number, messages: readonly ProduceMessage[], bytes: number): void {
    if (bytes > this.maxBytes || this.entries.has(logIndex)) return;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes + bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
    }
    this.entries.set(logIndex, { messages, bytes });
    this.bytes += bytes;
    assert(this.bytes <= this.maxBytes, 'the decoded entry cache stays within its bound');
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

/** The messages the refs point at; entries found in `decoded` are not read again, those read are added to it. */
export function fetchMessages(log: CommittedLogReader, refs: readonly QueueRef[], decoded: DecodedEntries): StoredMessage[] {
  const found = new Map<number, readonly ProduceMessage[]>();
  const missing = new Set<number>();
  for (const ref of refs) {
    const index = ref.at.logIndex;
    if (found.has(index) || missing.has(index)) continue;
    const cached = decoded.get(index);
    if (cached === undefined) missing.add(index);
    else found.set(index, cached);
  }
  for (const [index, entry] of readPlacingEntries(log, [...missing].sort((a, b) => a - b))) {
    found.set(index, entry.messages);
    decoded.set(index, entry.messages, entry.bytes);
  }
  const messages = refs.map((ref) => {
    const carried = found.get(ref.at.logIndex);
    assert(carried !== undefined, () => `log entry ${ref.at.logIndex} was not read`);
    return storedMessage(ref, carried);
  });
  assert(messages.length === refs.length, 'one message per reference');
  return messages;
}

/**
 * Reads the given (sorted, distinct) log indexes, asking for each run of consecutive ones at
 * once; answers each entry's messages by position, with the entry's data size.
 */
function readPlacingEntries(log: CommittedLogReader, logIndexes: readonly number[]): Map<number, { messages: readonly ProduceMessage[]; bytes: number }> {
  const commands = new Map<number, { messages: readonly ProduceMessage[]; bytes: number }>();
  let i = 0;
  while (i < logIndexes.length) {
    const lo = logIndexes[i] as number;
    let runLength = 1;
    while (logIndexes[i + runLength] === lo + runLength) runLength++;
    const entries = log.entries(lo, lo + runLength, LOG_READ_CHUNK_BYTES);
    assert(entries.length >= 1, () => `log returned no entry at committed index ${lo}`);
    assert(entries.length <= runLength, () => `log returned ${entries.length} entries for ${runLength} asked`);
    entries.forEach((entry, k) => {
      assert(entry.index === lo + k, () => `log returned entry ${entry.index} where ${lo + k} was asked`);
      assert(entry.type === EntryType.Normal, () => `consume queue points at non-normal entry ${entry.index}`);
      const command = decodeCommand(entry.data, entry.index);
      const carried = carriedMessages(command);
      assert(carried !== undefined, () => `consume queue points at ${command.kind} entry ${entry.index}`);
      commands.set(entry.index, { messages: carried, bytes: entry.data.byteLength });
    });
    i += entries.length;
  }
  assert(commands.size === logIndexes.length, 'every asked log index was read');
  return commands;
}

function storedMessage(ref: QueueRef, carried: readonly ProduceMessage[]): StoredMessage {
  const message = carried[ref.at.batchPos];
  assert(message !== undefined, () => `log entry ${ref.at.logIndex} has no message at position ${ref.at.batchPos}`);
  assert(message.topic === ref.topic, () => `log entry ${ref.at.logIndex} holds topic ${message.topic}, index says ${ref.topic}`);
  assert(message.queueId === ref.queueId, () => `log entry ${ref.at.logIndex} holds queue ${message.queueId}, index says ${ref.queueId}`);
  assert(message.body.byteLength === ref.at.bodyBytes, () => `log entry ${ref.at.logIndex} body size differs from its index`);
  // Built field by field: an object spread here cost ~4.5 µs a message (V8's slow clone path),
  // 60% of a read's time (bench:apply-read reads 10 → 4 µs a message).
  const stored: StoredMessage = {
    msgId: message.msgId, topic: message.topic, queueId: message.queueId, body: message.body,
    offset: ref.offset, logIndex: ref.at.logIndex, storeTimestampMs: ref.at.storeTimestampMs,
  };
  if (message.tag !== undefined) stored.tag = message.tag;
  if (message.keys !== undefined) stored.keys = message.keys;
  if (message.properties !== undefined) stored.properties = message.properties;
  if (message.deliverAtMs !== undefined) stored.deliverAtMs = message.deliverAtMs;
  if (message.reconsumeTimes !== undefined) stored.reconsumeTimes = message.reconsumeTimes;
  if (message.origin !== undefined) stored.origin = message.origin;
  if (message.firstFailureMs !== undefined) stored.firstFailureMs = message.firstFailureMs;
  if (message.deadLetter !== undefined) stored.deadLetter = message.deadLetter;
  return stored;
}

/** Every field of ProduceMessage that storedMessage copies: a field added there fails to compile until copied too. */
type CopiedField = 'msgId' | 'topic' | 'queueId' | 'body' | 'tag' | 'keys' | 'properties' | 'deliverAtMs' | 'reconsumeTimes' | 'origin' | 'firstFailureMs' | 'deadLetter';
const EVERY_FIELD_COPIED: Exclude<keyof ProduceMessage, CopiedField> extends never ? true : never = true;
void EVERY_FIELD_COPIED;
