// Preloaded into node processes (`node --import`) by test/log-disk-full.test.ts: the filesystem
// reports ENOSPC when a log segment is zero-filled, after the first
// LMQ_TEST_SEGMENTS_BEFORE_FULL segments — the failing syscall injected, no real disk filled.
// The spare segment (prepared in the background) always fails, so each roll zero-fills inline.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';

const allowed = Number(process.env.LMQ_TEST_SEGMENTS_BEFORE_FULL ?? '0');
let created = 0;
const fullFds = new Set();
const enospc = (syscall) => Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), { code: 'ENOSPC', errno: -28, syscall });

const openSync = fs.openSync;
fs.openSync = (path, ...rest) => {
  const fd = openSync(path, ...rest);
  // Opened 'w' to be zero-filled (then reopened 'r+' for its header, into blocks it already has).
  if (String(path).endsWith('roll-segment.tmp') && rest[0] === 'w' && ++created > allowed) fullFds.add(fd);
  return fd;
};
const writeSync = fs.writeSync;
fs.writeSync = (fd, ...rest) => {
  if (fullFds.has(fd)) throw enospc('write');
  return writeSync(fd, ...rest);
};
const closeSync = fs.closeSync;
fs.closeSync = (fd) => {
  fullFds.delete(fd);
  return closeSync(fd);
};
const open = fsp.open;
fsp.open = async (path, ...rest) => {
  if (String(path).endsWith('next-segment.tmp')) throw enospc('open');
  return open(path, ...rest);
};
syncBuiltinESMExports();
