// Summarizes a V8 .cpuprofile (from `ledgermq bench --cpu-prof`): self time by function and
// by source file, plus inclusive time of this project's functions, so the hot path of a node
// under load can be read without a GUI. Usage: node dist/bench/cpuprofile-top.js FILE [TOP]
// [FROM_US TO_US] — the window as `bench --cpu-prof` prints it (its JSON's `window`).
import { formatRows, summarizeProfile } from '../src/bench/cpu-profile.js';

const [path, topArg, fromArg, toArg] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: cpuprofile-top FILE [TOP] [FROM_US TO_US]');
const top = Number(topArg ?? 30);
const window = fromArg === undefined ? undefined : { fromUs: Number(fromArg), toUs: Number(toArg) };
if (window !== undefined && !(window.fromUs < window.toUs)) throw new Error('FROM_US must be below TO_US');
const summary = summarizeProfile(path, window);
console.log(`${path}: ${(summary.totalUs / 1e6).toFixed(1)} s sampled${window === undefined ? '' : ` between ${window.fromUs} and ${window.toUs} µs`}`);
for (const [title, rows] of [
  ['self time by function', summary.selfByFunction],
  ['self time by file', summary.selfByFile],
  ['inclusive time of ledgermq functions', summary.inclusiveOwn],
] as const) {
  console.log(`\n${title}`);
  for (const line of formatRows(rows, summary.totalUs, top)) console.log(line);
}
