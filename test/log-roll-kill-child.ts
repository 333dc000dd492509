// Child process for the roll-kill test: appends and fsyncs rounds of entries in storage mode
// lazy with 4 KiB segments, so the store rolls every few rounds, and reports each round once it
// is durable. At roll number `roll` it stops dead at `pauseAt` — before the new segment's
// rename, right after it (before the sealed segment's index is written), or after the index
// (at the next segment write) — reports it, and waits for the parent's SIGKILL.
import { join } from 'node:path';
import { type LogFileIo, LazyFileIo } from '../src/log/file-io.js';
import { LogStore } from '../src/log/log-store.js';
import { entries, lazyIoWith } from './log-helpers.js';

export type PauseAt = 'before-rename' | 'after-rename' | 'after-index';

const [dir, pauseAtText, rollText] = process.argv.slice(2);
const pauseAt = pauseAtText as PauseAt;
const roll = Number(rollText);
const lazy = new LazyFileIo();
let synced = 0;
let renames = 0;
let pauseAtNextWrite = false;

function pauseForKill(): void {
  // stdout on a pipe is synchronous on Linux: the line is out before the thread blocks.
  process.stdout.write(`paused ${pauseAt} synced ${synced}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  process.exit(1);
}

// The first rename creates the log's first segment; each later one is a roll.
const io: LogFileIo = lazyIoWith(lazy, {
  writeSync: (fd, buf, offset, length, position) => {
    if (pauseAtNextWrite) pauseForKill();
    return lazy.writeSync(fd, buf, offset, length, position);
  },
  renameSync: (from, to) => {
    renames += 1;
    const rolling = renames - 1 === roll;
    if (rolling && pauseAt === 'before-rename') pauseForKill();
    lazy.renameSync(from, to);
    if (rolling && pauseAt === 'after-rename') pauseForKill();
    if (rolling && pauseAt === 'after-index') pauseAtNextWrite = true;
  },
});

const log = LogStore.open({ dir: join(dir!, 'log'), segmentBytes: 4096, flushMode: 'sync', flushIntervalMs: 100, io });
for (let round = 1; round <= 200; round++) {
  const from = log.lastIndex() + 1;
  // The term of an entry is 1 + floor((index - 1) / 10), as the parent expects.
  for (let index = from; index < from + 4; index++) log.append(entries(index, index, 1 + Math.floor((index - 1) / 10), 300));
  await log.flush();
  synced = log.lastIndex();
  process.stdout.write(`synced ${synced}\n`);
}
process.stdout.write('never paused\n');
