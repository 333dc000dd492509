// Summarizes a V8 .cpuprofile (from `ledgermq bench --cpu-prof`): self time by function and
// by source file, plus inclusive time of this project's functions, so the hot path of a node
// under load can be read without a GUI. Usage: node dist/bench/cpuprofile-top.js FILE [TOP]
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const path = process.argv[2];
if (path === undefined) throw new Error('usage: cpuprofile-top FILE [TOP]');
const top = Number(process.argv[3] ?? 30);
const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

const shortUrl = (url: string) => url.replace(/^file:\/\/.*?\/(dist\/|node_modules\/)/, '$1');
const frameKey = (f: CallFrame) => `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;

function tally(key: (n: ProfileNode) => string): [string, number][] {
  const sums = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const k = key(byId.get(id)!);
    sums.set(k, (sums.get(k) ?? 0) + us);
  }
  return [...sums].sort((a, b) => b[1] - a[1]);
}

/** Inclusive time: each sample counts once for every distinct frame on its stack. */
function inclusive(): [string, number][] {
  const sums = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!f.url.includes('/dist/src/')) continue;
      const k = frameKey(f);
      if (seen.has(k)) continue;
      seen.add(k);
      sums.set(k, (sums.get(k) ?? 0) + us);
    }
  }
  return [...sums].sort((a, b) => b[1] - a[1]);
}

const print = (title: string, rows: [string, number][]) => {
  console.log(`\n${title}`);
  for (const [k, us] of rows.slice(0, top)) console.log(`${((100 * us) / totalUs).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
};
console.log(`${path}: ${(totalUs / 1e6).toFixed(1)} s sampled`);
print('self time by function', tally((n) => frameKey(n.callFrame)));
print('self time by file', tally((n) => shortUrl(n.callFrame.url) || `(${n.callFrame.functionName})`));
print('inclusive time of ledgermq functions', inclusive());
