// Reading V8 .cpuprofile files (`node --cpu-prof`, as `bench --cpu-prof` runs the nodes): self
// time by function and by source file, and inclusive time of this project's functions, so the
// hot path of a node under load can be read without a GUI. bench/cpuprofile-top.ts prints one
// file; `bench --cpu-prof` prints each node's top functions after its modes.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

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
  /** Microseconds on the machine's monotonic clock (process.hrtime's), as are the deltas. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A span of the monotonic clock, µs (process.hrtime.bigint() / 1000): the profiles' clock in every process. */
export interface MonotonicWindow {
  readonly fromUs: number;
  readonly toUs: number;
}

/** Now on the clock the nodes' profiles use. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** One row of a summary: what (function or file) and its sampled time in µs. */
export type ProfileRow = readonly [name: string, us: number];

export interface ProfileSummary {
  readonly totalUs: number;
  readonly selfByFunction: readonly ProfileRow[];
  readonly selfByFile: readonly ProfileRow[];
  /** Each sample counts once for every distinct ledgermq frame on its stack. */
  readonly inclusiveOwn: readonly ProfileRow[];
}

const shortUrl = (url: string) => url.replace(/^file:\/\/.*?\/(dist\/|node_modules\/)/, '$1');
const frameKey = (f: CallFrame) => `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;

/** `window`: only the samples taken within it (e.g. a bench's measured seconds, not start-up and warm-up). */
export function summarizeProfile(path: string, window?: MonotonicWindow): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let atUs = profile.startTime;
  profile.samples.forEach((id, i) => {
    const deltaUs = profile.timeDeltas[i] ?? 0;
    atUs += deltaUs;
    if (window !== undefined && (atUs < window.fromUs || atUs > window.toUs)) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + deltaUs);
  });
  const sorted = (sums: Map<string, number>): ProfileRow[] => [...sums].sort((a, b) => b[1] - a[1]);
  const tally = (key: (n: ProfileNode) => string): ProfileRow[] => {
    const sums = new Map<string, number>();
    for (const [id, us] of selfUs) {
      const k = key(byId.get(id)!);
      sums.set(k, (sums.get(k) ?? 0) + us);
    }
    return sorted(sums);
  };
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!f.url.includes('/dist/src/')) continue;
      const k = frameKey(f);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  return {
    totalUs: [...selfUs.values()].reduce((a, b) => a + b, 0),
    selfByFunction: tally((n) => frameKey(n.callFrame)),
    selfByFile: tally((n) => shortUrl(n.callFrame.url) || `(${n.callFrame.functionName})`),
    inclusiveOwn: sorted(inclusive),
  };
}

/** The top rows as lines: share of all samples, milliseconds, name. */
export function formatRows(rows: readonly ProfileRow[], totalUs: number, top: number): string[] {
  return rows.slice(0, top).map(([name, us]) => `${((100 * us) / totalUs).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`);
}

/** The profile a node process wrote into `dir` (Node names them CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile). */
export function profileOfPid(dir: string, pid: number): string | null {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  const name = names.find((n) => n.endsWith('.cpuprofile') && n.split('.')[3] === String(pid));
  return name === undefined ? null : join(dir, name);
}
