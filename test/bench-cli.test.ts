// `ledgermq bench` end to end on the built CLI: a one-second run on a real three-node cluster
// writes the CONTRACT.md JSON and a chart, and bad modes are refused with exit 2. No timing
// is asserted — numbers belong in bench output, not in tests.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseModes } from '../src/bench/modes.js';
import { runLedgermq } from './process-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'lmq-bench-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function bench(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const result = await runLedgermq(['bench', ...args], 60_000);
  return { status: result.code, stdout: result.stdout, stderr: result.stderr };
}

describe('bench command – output', () => {
  it('a one-second run prints and writes the JSON document and an SVG chart', async () => {
    const out = join(dir, 'out');
    const result = await bench('--modes', 'sync:majority', '--duration', '1', '--warmup', '0', '--concurrency', '4', '--json', '--out', out);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const printed = JSON.parse(result.stdout);
    expect(JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8'))).toEqual(printed);
    expect(printed.fsyncP50Ms).toBeGreaterThan(0);
    expect(printed.fsyncP99Ms).toBeGreaterThanOrEqual(printed.fsyncP50Ms);
    expect(printed.results).toHaveLength(1);
    const [row] = printed.results;
    expect(row).toMatchObject({ mode: 'sync:majority', errors: 0, sizeBytes: 128, concurrency: 4, maxBatch: 256 });
    for (const field of ['msgsPerSec', 'msgsPerRequest', 'mbPerSec', 'p50Ms', 'p99Ms', 'p999Ms', 'maxMs', 'fsyncsPerSec']) expect(row[field]).toBeGreaterThan(0);
    expect(row.p99Ms).toBeGreaterThanOrEqual(row.p50Ms);
    expect(row.maxMs).toBeGreaterThanOrEqual(row.p999Ms);
    // CONTRACT.md: the three nodes' CPU per acknowledged message.
    const serverCpuPct = row.leaderCpuPct + row.followerCpuPct.reduce((a: number, b: number) => a + b, 0);
    expect(row.serverCpuUsPerMsg).toBeGreaterThan(0);
    expect(row.serverCpuUsPerMsg).toBeCloseTo(((serverCpuPct / 100) * 1e6) / row.msgsPerSec, -1);
    expect(row.nodes.map((n: { id: string }) => n.id).sort()).toEqual(['n1', 'n2', 'n3']);
    expect(row.nodes.filter((n: { role: string }) => n.role === 'leader')).toHaveLength(1);
    // The measured window on the monotonic clock (µs), which --cpu-prof summaries keep to.
    expect(row.window.toUs - row.window.fromUs).toBeGreaterThanOrEqual(row.measuredS * 1e6 * 0.9);
    const svg = readFileSync(join(out, 'bench.svg'), 'utf8');
    expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('sync:majority');
  });

  it('--cpu-prof prints each node\'s top functions by self time from the profile it wrote', async () => {
    const out = join(dir, 'prof');
    const result = await bench('--modes', 'sync:majority', '--duration', '1', '--warmup', '0', '--concurrency', '4', '--cpu-prof', '--out', out);
    expect(result.status).toBe(0);
    for (const id of ['n1', 'n2', 'n3']) expect(result.stdout).toMatch(new RegExp(`sync:majority ${id} \\((leader|follower)\\): top 20 functions by self time`));
    expect(result.stdout).not.toContain('no profile in');
    // Only the measured second is summarized, not the process's start-up, warm-up and stop.
    const seconds = [...result.stdout.matchAll(/in the measured ([\d.]+) s/g)].map((m) => Number(m[1]));
    expect(seconds).toHaveLength(3);
    for (const s of seconds) {
      expect(s).toBeGreaterThan(0.5);
      expect(s).toBeLessThan(1.5);
    }
  });

  it('a malformed mode exits 2 naming it, before any cluster starts', async () => {
    const out = join(dir, 'bad');
    const result = await bench('--modes', 'sync:sometimes', '--duration', '1', '--out', out);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('bad mode "sync:sometimes"');
    expect(existsSync(out)).toBe(false);
  });
});

describe('bench modes – parsing', () => {
  it('reads flush:quorum lists and refuses anything else', () => {
    expect(parseModes('sync:majority, async:leader')).toEqual([
      { name: 'sync:majority', flush: 'sync', quorum: 'majority' },
      { name: 'async:leader', flush: 'async', quorum: 'leader' },
    ]);
    for (const bad of ['', 'sync', 'sync:majority:x', 'fast:majority', 'sync:most']) expect(() => parseModes(bad)).toThrow(/--modes|bad mode/);
  });
});
