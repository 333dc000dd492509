// A pull with a filter (src/filter): the consume queue is scanned from the pull's offset, a
// record whose tag hash rules the message out is skipped without reading the commit log, the
// others are read (a chunk of them at a time, runs of log entries at once) and tested, and the
// matching ones are answered within the pull's bounds. Every skipped message still moves the
// answer's nextBeginOffset, so a consumer that commits it passes them: a group whose filter
// matches nothing reaches lag 0. The scan is bounded per pull (LIMITS.maxPullScanRecords and
// maxPullScanBytes); a pull that reaches the bound answers what it has so far.
import { LIMITS } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import type { MessageFilter } from '../filter/index.js';
import { type DecodedEntries, fetchMessages, type QueueRef, type StoredMessage } from './reads.js';
import type { CommittedLogReader } from './state-machine.js';
import type { BrokerStore, QueueRecord } from './store.js';

export interface FilteredRead {
  /** Where the scan started: fromOffset, or minOffset when retention deleted fromOffset. */
  readonly startOffset: number;
  /** Past the last record looked at (the next pull starts here). */
  readonly nextBeginOffset: number;
  /** The matching messages in [startOffset, nextBeginOffset), in offset order. */
  readonly messages: StoredMessage[];
  /** The scan stopped at its bound with records left to look at. */
  readonly scanBounded: boolean;
}

/** Candidates read from the log and tested together. */
const CANDIDATES_PER_FETCH = 256;

export interface FilteredQueue {
  readonly topic: string;
  readonly queueId: number;
  readonly queue: QueueRecord;
}

export function readMatching(
  store: BrokerStore,
  log: CommittedLogReader,
  { topic, queueId, queue }: FilteredQueue,
  fromOffset: number,
  bounds: { readonly maxMessages: number; readonly maxBytes: number },
  filter: MessageFilter,
  decoded: DecodedEntries,
): FilteredRead {
  assert(bounds.maxMessages >= 1 && bounds.maxBytes >= 1, 'a filtered read may answer a message');
  const startOffset = Math.max(fromOffset, queue.minOffset);
  const messages: StoredMessage[] = [];
  let bytes = 0;
  let offset = startOffset;
  let scannedRecords = 0;
  let scannedBytes = 0;
  const withinScan = () => offset < queue.nextOffset && scannedRecords < LIMITS.maxPullScanRecords && scannedBytes < LIMITS.maxPullScanBytes;
  while (withinScan()) {
    const candidates: QueueRef[] = [];
    while (withinScan() && candidates.length < CANDIDATES_PER_FETCH) {
      const at = store.getConsumeQueue(topic, queueId, offset);
      assert(at !== undefined, () => `consume queue ${topic}/${queueId} has a hole at ${offset}`);
      scannedRecords++;
      if (filter.mayMatchTagHash(at.tagHash)) {
        candidates.push({ topic, queueId, offset, at });
        scannedBytes += at.bodyBytes;
      }
      offset++;
    }
    // A log entry may hold messages of several chunks: the cache decodes it once.
    const fetched = fetchMessages(log, candidates, decoded);
    for (const message of fetched) {
      if (!filter.matches(message)) continue;
      const full = messages.length >= bounds.maxMessages || (messages.length > 0 && bytes + message.body.byteLength > bounds.maxBytes);
      // The first match that does not fit is where the next pull starts.
      if (full) return answer(startOffset, message.offset, messages, false);
      messages.push(message);
      bytes += message.body.byteLength;
    }
    if (messages.length >= bounds.maxMessages) break;
  }
  return answer(startOffset, offset, messages, offset < queue.nextOffset && messages.length < bounds.maxMessages);
}

function answer(startOffset: number, nextBeginOffset: number, messages: StoredMessage[], scanBounded: boolean): FilteredRead {
  assert(nextBeginOffset >= startOffset, 'a filtered read ends at or after its start');
  assert(messages.every((m, i) => m.offset >= startOffset && m.offset < nextBeginOffset && (i === 0 || m.offset > messages[i - 1]!.offset)), 'answered messages lie in the scanned range, in order');
  return { startOffset, nextBeginOffset, messages, scanBounded };
}
