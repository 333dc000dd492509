// The chaos run's timeline picture (SVG): one row per worker with each operation drawn from
// its invoke to its completion (ok green, fail red, info orange, unfinished grey), a row of
// leader changes, and every fault as a shaded band across the rows. Bounded in size: past
// timelineOpsMax operations, ok ones are thinned out (fail and info are always drawn).
import type { HistoryEvent } from '../checker/index.js';
import type { FaultRecord, HistoryRecorder, LeaderChange } from './recorder.js';

export const timelineOpsMax = 20_000;

const widthPx = 1400;
const labelPx = 110;
const rowPx = 16;
const colors = { ok: '#3a3', fail: '#d33', info: '#f90', open: '#999' } as const;
const faultColors: Record<FaultRecord['kind'], string> = { kill: '#d33', pause: '#36c', partition: '#939', power: '#e80' };
const nodeColors = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d'];

interface Span {
  lane: string;
  start: number;
  end: number;
  outcome: keyof typeof colors;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function spansOf(events: readonly HistoryEvent[], lanes: ReadonlyMap<number, string>, endTime: number): Span[] {
  const open = new Map<number, HistoryEvent>();
  const spans: Span[] = [];
  for (const event of events) {
    if (event.type === 'invoke') {
      open.set(event.process, event);
      continue;
    }
    const invoke = open.get(event.process);
    open.delete(event.process);
    if (invoke !== undefined) spans.push({ lane: lanes.get(event.process) ?? `process ${event.process}`, start: invoke.time, end: event.time, outcome: event.type });
  }
  for (const invoke of open.values()) spans.push({ lane: lanes.get(invoke.process) ?? `process ${invoke.process}`, start: invoke.time, end: endTime, outcome: 'open' });
  const okCount = spans.filter((s) => s.outcome === 'ok').length;
  const keepEvery = Math.max(1, Math.ceil(okCount / timelineOpsMax));
  let okSeen = 0;
  return spans.filter((s) => s.outcome !== 'ok' || okSeen++ % keepEvery === 0);
}

export function renderTimeline(recorder: HistoryRecorder, title: string): string {
  const endTime = Math.max(1, recorder.now());
  const spans = spansOf(recorder.events, recorder.lanes, endTime);
  const laneNames = [...new Set(recorder.lanes.values())];
  const top = 54; // room for two rows of fault labels under the title
  const leaderRowY = top;
  const laneY = (i: number) => top + rowPx * (i + 2);
  const heightPx = laneY(laneNames.length) + 40;
  const x = (time: number) => labelPx + (time / endTime) * (widthPx - labelPx - 10);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${widthPx}" height="${heightPx}" font-family="monospace" font-size="11">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="13">${escapeXml(title)}</text>`);
  recorder.faults.forEach((fault, i) => {
    const x0 = x(fault.start);
    const x1 = x(fault.end ?? endTime);
    parts.push(`<rect x="${x0.toFixed(1)}" y="${top - 4}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${heightPx - top - 30}" fill="${faultColors[fault.kind]}" fill-opacity="0.12"><title>${escapeXml(fault.detail)}</title></rect>`);
    // Successive labels alternate between two rows, so a long one does not run into the next.
    parts.push(`<text x="${x0.toFixed(1)}" y="${top - 8 - (i % 2) * 13}" fill="${faultColors[fault.kind]}">${escapeXml(fault.detail)}</text>`);
  });
  parts.push(...leaderRow(recorder.leaders, leaderRowY, x, endTime));
  laneNames.forEach((lane, i) => parts.push(`<text x="4" y="${laneY(i) + 11}">${escapeXml(lane)}</text>`));
  const rowOf = new Map(laneNames.map((lane, i) => [lane, i]));
  for (const span of spans) {
    const x0 = x(span.start);
    const w = Math.max(1, x(span.end) - x0);
    parts.push(`<rect x="${x0.toFixed(1)}" y="${laneY(rowOf.get(span.lane) ?? 0) + 2}" width="${w.toFixed(1)}" height="${rowPx - 4}" fill="${colors[span.outcome]}"/>`);
  }
  const legendY = heightPx - 12;
  parts.push(`<text x="4" y="${legendY}">ok=green fail=red info=orange unfinished=grey; faults: kill=red pause=blue partition=purple power=orange; time 0–${(endTime / 1000).toFixed(1)} s</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

function leaderRow(leaders: readonly LeaderChange[], y: number, x: (t: number) => number, endTime: number): string[] {
  const nodeIds = [...new Set(leaders.map((l) => l.leader).filter((l): l is string => l !== null))].sort();
  const parts = [`<text x="4" y="${y + 11}">leader</text>`];
  leaders.forEach((change, i) => {
    const end = leaders[i + 1]?.time ?? endTime;
    if (change.leader === null) return;
    const color = nodeColors[nodeIds.indexOf(change.leader) % nodeColors.length] ?? '#000';
    const x0 = x(change.time);
    const w = Math.max(1, x(end) - x0);
    parts.push(`<rect x="${x0.toFixed(1)}" y="${y + 1}" width="${w.toFixed(1)}" height="${rowPx - 2}" fill="${color}"><title>${escapeXml(`${change.leader} term ${change.term}`)}</title></rect>`);
    if (w > 20) parts.push(`<text x="${(x0 + 2).toFixed(1)}" y="${y + 11}" fill="white">${escapeXml(change.leader)}</text>`);
  });
  return parts;
}
