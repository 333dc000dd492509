// Summarizes a V8 .cpuprofile (from `ledgermq bench --cpu-prof`): self time by function and
// by source file, plus inclusive time of this project's functions, so the hot path of a node
// under load can be read without a GUI. Usage: node dist/bench/cpuprofile-top.js FILE [TOP]
import { formatRows, summarizeProfile } from '../src/bench/cpu-profile.js';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: cpuprofile-top FILE [TOP]');
const top = Number(process.argv[3] ?? 30);
const summary = summarizeProfile(path);
console.log(`${path}: ${(summary.totalUs / 1e6).toFixed(1)} s sampled`);
for (const [title, rows] of [
  ['self time by function', summary.selfByFunction],
  ['self time by file', summary.selfByFile],
  ['inclusive time of ledgermq functions', summary.inclusiveOwn],
] as const) {
  console.log(`\n${title}`);
  for (const line of formatRows(rows, summary.totalUs, top)) console.log(line);
}
