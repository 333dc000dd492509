// Child process for the install-kill test: in storage mode lazy with 4 KiB segments it writes
// and fsyncs an old log 1..oldLast (entries(…, 1, 300)), then installs the window
// [firstIndex, lastIndex] (windowEntries) in batches of 8, and stops dead at `pauseAt`: at the 6th write into the staging
// directory, before the old log is renamed aside, after that rename, after the staging is
// renamed into place (the decision), or after the first file of the replaced log is unlinked.
// It reports the pause and waits for the parent's SIGKILL.
import { join } from 'node:path';
import { type LogFileIo, LazyFileIo } from '../src/log/file-io.js';
import { LogStore } from '../src/log/log-store.js';
import { entries, inBatches, lazyIoWith, windowEntries } from './log-helpers.js';

export type InstallPauseAt = 'staging-write' | 'before-aside' | 'after-aside' | 'after-swap' | 'removing-old';

const [dir, pauseAtText, ...numbers] = process.argv.slice(2);
const pauseAt = pauseAtText as InstallPauseAt;
const [oldLast, firstIndex, prevTerm, lastIndex] = numbers.map(Number) as [number, number, number, number];
const logDir = join(dir!, 'log');
const lazy = new LazyFileIo();
const pathOfFd = new Map<number, string>();
let installing = false;
let stagingWrites = 0;

function pauseForKill(): void {
  // stdout on a pipe is synchronous on Linux: the line is out before the thread blocks.
  process.stdout.write(`paused ${pauseAt}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  process.exit(1);
}

const io: LogFileIo = lazyIoWith(lazy, {
  openSync: (path, flags) => {
    const fd = lazy.openSync(path, flags);
    pathOfFd.set(fd, path);
    return fd;
  },
  writeSync: (fd, buf, offset, length, position) => {
    if (installing && pathOfFd.get(fd)!.startsWith(`${logDir}.install/`)) {
      stagingWrites += 1;
      if (pauseAt === 'staging-write' && stagingWrites === 6) pauseForKill();
    }
    return lazy.writeSync(fd, buf, offset, length, position);
  },
  renameSync: (from, to) => {
    const aside = from === logDir && to === `${logDir}.old`;
    if (aside && pauseAt === 'before-aside') pauseForKill();
    lazy.renameSync(from, to);
    if (aside && pauseAt === 'after-aside') pauseForKill();
    if (from === `${logDir}.install` && pauseAt === 'after-swap') pauseForKill();
  },
  unlinkSync: (path) => {
    lazy.unlinkSync(path);
    if (path.startsWith(`${logDir}.old/`) && pauseAt === 'removing-old') pauseForKill();
  },
});

const log = LogStore.open({ dir: logDir, segmentBytes: 4096, flushMode: 'sync', flushIntervalMs: 100, io });
for (let index = 1; index <= oldLast; index += 10) log.append(entries(index, Math.min(oldLast, index + 9), 1, 300));
await log.flush();
installing = true;
await log.installWindow({ firstIndex, prevTerm, lastIndex }, inBatches(windowEntries(firstIndex, lastIndex, prevTerm), 8));
process.stdout.write('never paused\n');
