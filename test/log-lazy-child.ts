// Child process for the lazy-storage kill test: appends and fsyncs rounds of entries, saving
// the hard state each round, and reports each round on stdout once it is durable; then appends
// a tail it never flushes, reports it written, and waits for the parent's SIGKILL.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { join } from 'node:path';
import { fileIoFor, type StorageMode } from '../src/log/file-io.js';
import { HardStateStore } from '../src/log/hard-state-store.js';
import { LogStore } from '../src/log/log-store.js';
import { entries } from './log-helpers.js';

const [dir, storageText, roundsText] = process.argv.slice(2);
const storage = storageText as StorageMode;
const log = LogStore.open({ dir: join(dir!, 'log'), segmentBytes: 64 * 1024, flushMode: 'sync', flushIntervalMs: 100, io: fileIoFor(storage) });
const hardState = HardStateStore.open(join(dir!, 'meta'), storage);
const entriesPerRound = 7;
for (let round = 1; round <= Number(roundsText); round++) {
  const from = log.lastIndex() + 1;
  log.append(entries(from, from + entriesPerRound - 1, 1, 300));
  await Promise.all([log.flush(), hardState.save({ term: round, vote: null })]);
  process.stdout.write(`synced ${log.lastIndex()} term ${round}\n`);
}
const from = log.lastIndex() + 1;
log.append(entries(from, from + 49, 1, 300));
await nextTurn(); // the store hands the appended frames to its file I/O at the end of the tick
process.stdout.write(`tail ${log.lastIndex()}\n`);
setInterval(() => {}, 1000); // wait to be killed
