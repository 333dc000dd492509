// How benchmark results are shown and kept: a fixed-width table for the terminal, the JSON
// document of CONTRACT.md, and an SVG bar chart (throughput and p99 per mode) drawn by hand.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DiskSyncLatency } from './disk.js';
import type { ModeResult } from './throughput.js';

export function formatTable(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(line)].join('\n');
}

export function throughputTable(results: readonly ModeResult[], disk: DiskSyncLatency): string {
  const headers = ['mode', 'msgs/s', 'MB/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'msgs/request', 'fsyncs/s', 'msgs/fsync', 'errors', 'cpu client/leader/followers %', 'leader µs/msg', 'server µs/msg', 'steal %', 'leader RSS MB'];
  const rows = results.map((r) => [
    r.leaderChanged ? `${r.mode}*` : r.mode, r.msgsPerSec, r.mbPerSec.toFixed(2), r.p50Ms, r.p90Ms, r.p99Ms, r.p999Ms, r.maxMs, r.msgsPerRequest, r.fsyncsPerSec, r.msgsPerFsync, r.errors,
    `${r.clientCpuPct}/${r.leaderCpuPct}/${r.followerCpuPct.join('+')}`, r.leaderCpuUsPerMsg, r.serverCpuUsPerMsg, r.stealPct, `${Math.round(r.leaderRssMb.start)}→${Math.round(r.leaderRssMb.max)} (heap etc. ${Math.round(r.rssAnonSamplesMb[0] ?? 0)}→${Math.round(Math.max(0, ...r.rssAnonSamplesMb))})`,
  ]);
  const disclaimer = results.some((r) => r.leaderChanged) ? '\n* the leader changed during this run (an election under load): its fsync and leader CPU figures mix two nodes' : '';
  return `${formatTable(headers, rows)}\ndisk append+fdatasync: p50 ${disk.p50Ms} ms, p99 ${disk.p99Ms} ms (${disk.samples} samples)${disclaimer}`;
}

export function writeJson(outDir: string, name: string, document: unknown): string {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, name);
  writeFileSync(path, `${JSON.stringify(document, null, 2)}\n`);
  return path;
}

export function writeChart(outDir: string, name: string, results: readonly ModeResult[], subtitle: string): string {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, name);
  writeFileSync(path, throughputChart(results, subtitle));
  return path;
}

const PANEL_WIDTH = 420;
const PANEL_HEIGHT = 260;
const BAR_AREA_TOP = 50;
const BAR_AREA_HEIGHT = 160;

/** Two panels side by side: msgs/s and p99 latency, one bar per mode. */
export function throughputChart(results: readonly ModeResult[], subtitle: string): string {
  const panels = [
    barPanel('throughput (msgs/s)', results.map((r) => [r.mode, r.msgsPerSec] as const), 0, '#3b6ea5'),
    barPanel('p99 latency (ms)', results.map((r) => [r.mode, r.p99Ms] as const), PANEL_WIDTH, '#c0504d'),
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * PANEL_WIDTH}" height="${PANEL_HEIGHT + 30}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="${PANEL_HEIGHT + 20}" fill="#555">${escapeXml(subtitle)}</text>`,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}

function barPanel(title: string, bars: readonly (readonly [string, number])[], x0: number, color: string): string {
  const max = Math.max(1e-9, ...bars.map(([, v]) => v));
  const slot = (PANEL_WIDTH - 40) / Math.max(1, bars.length);
  const parts = [`<text x="${x0 + 20}" y="25" font-size="14" font-weight="bold">${escapeXml(title)}</text>`];
  const baseY = BAR_AREA_TOP + BAR_AREA_HEIGHT;
  parts.push(`<line x1="${x0 + 20}" y1="${baseY}" x2="${x0 + PANEL_WIDTH - 20}" y2="${baseY}" stroke="#333"/>`);
  bars.forEach(([label, value], i) => {
    const height = (value / max) * BAR_AREA_HEIGHT;
    const x = x0 + 20 + i * slot + slot * 0.15;
    const width = slot * 0.7;
    parts.push(`<rect x="${x.toFixed(1)}" y="${(baseY - height).toFixed(1)}" width="${width.toFixed(1)}" height="${height.toFixed(1)}" fill="${color}"/>`);
    parts.push(`<text x="${(x + width / 2).toFixed(1)}" y="${(baseY - height - 4).toFixed(1)}" text-anchor="middle">${formatValue(value)}</text>`);
    parts.push(`<text x="${(x + width / 2).toFixed(1)}" y="${baseY + 16}" text-anchor="middle">${escapeXml(label)}</text>`);
  });
  return parts.join('\n');
}

function formatValue(value: number): string {
  return value >= 100 ? String(Math.round(value)) : value.toFixed(2);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
