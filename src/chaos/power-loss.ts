// The loss window of a power-loss chaos run: which acknowledged writes the checker found lost,
// when they were acknowledged, and how long before the power cut that took them. A pure
// function of the report's lost ack times and the faults, so the report and tests share it.
import { assert } from '../util/assert.js';
import type { FaultRecord } from './recorder.js';

export interface CutLoss {
  /** History time the power went off. */
  readonly cutMs: number;
  readonly nodes: readonly string[];
  readonly allNodes: boolean;
  /** Lost writes acknowledged after the previous cut and before this one. */
  readonly lost: number;
  /** How long before the cut the earliest and the latest of them were acknowledged; null when none. */
  readonly ackedBeforeCutMaxMs: number | null;
  readonly ackedBeforeCutMinMs: number | null;
}

export interface LossWindow {
  readonly lost: number;
  /** Ack times of the first and the last lost write; null when nothing was lost. */
  readonly firstLostAckMs: number | null;
  readonly lastLostAckMs: number | null;
  readonly cuts: readonly CutLoss[];
  /** Lost writes acknowledged after the last power cut: no cut explains them. */
  readonly afterLastCut: number;
}

/**
 * A reply the node sent just before it died can reach the client a moment after the cut was
 * recorded (the kernel still delivers what the socket held); an ack this close after a cut
 * belongs to it. Far below the time any cluster needs to reboot and acknowledge again.
 */
export const ACK_IN_FLIGHT_GRACE_MS = 50;

/**
 * `lostAckTimesMs` ascending (CheckReport.lostAckTimesMs); each lost write goes to the first
 * cut at or after its ack, less the grace for a reply in flight (so "before the cut" may be a
 * few milliseconds below zero).
 */
export function lossWindow(lostAckTimesMs: readonly number[], faults: readonly FaultRecord[], nodeCount: number): LossWindow {
  const cuts = faults.filter((f) => f.kind === 'power');
  const byCut: number[][] = cuts.map(() => []);
  let afterLastCut = 0;
  for (const ackMs of lostAckTimesMs) {
    const position = cuts.findIndex((cut) => cut.start + ACK_IN_FLIGHT_GRACE_MS >= ackMs);
    if (position === -1) afterLastCut += 1;
    else byCut[position]!.push(ackMs);
  }
  const cutLosses = cuts.map((cut, i): CutLoss => {
    const acks = byCut[i]!;
    return {
      cutMs: cut.start,
      nodes: cut.nodes,
      allNodes: cut.nodes.length === nodeCount,
      lost: acks.length,
      ackedBeforeCutMaxMs: acks.length === 0 ? null : cut.start - acks[0]!,
      ackedBeforeCutMinMs: acks.length === 0 ? null : cut.start - acks[acks.length - 1]!,
    };
  });
  assert(cutLosses.reduce((sum, c) => sum + c.lost, afterLastCut) === lostAckTimesMs.length, 'every lost write counted once');
  return {
    lost: lostAckTimesMs.length,
    firstLostAckMs: lostAckTimesMs[0] ?? null,
    lastLostAckMs: lostAckTimesMs[lostAckTimesMs.length - 1] ?? null,
    cuts: cutLosses,
    afterLastCut,
  };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Report lines: the window as a whole, then one line per cut. */
export function formatLossWindow(window: LossWindow): string[] {
  if (window.lost === 0) return [`power loss: no acknowledged write lost in ${window.cuts.length} power cut(s)`];
  const first = window.firstLostAckMs!;
  const last = window.lastLostAckMs!;
  const lines = [`power loss: ${window.lost} acknowledged write(s) lost, acked from ${seconds(first)} to ${seconds(last)} (span ${Math.round(last - first)} ms)`];
  for (const cut of window.cuts) {
    const what = `cut at ${seconds(cut.cutMs)} of ${cut.nodes.join(',')}${cut.allNodes ? ' (all nodes)' : ''}`;
    lines.push(cut.lost === 0 ? `  ${what}: nothing lost` : `  ${what}: ${cut.lost} lost, acked ${Math.round(cut.ackedBeforeCutMinMs!)}–${Math.round(cut.ackedBeforeCutMaxMs!)} ms before the cut`);
  }
  if (window.afterLastCut > 0) lines.push(`  ${window.afterLastCut} lost write(s) were acknowledged after the last power cut: no cut explains them`);
  return lines;
}
