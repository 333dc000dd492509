// Tiny builders for hand-written histories in checker tests: each helper returns the events
// of one operation; `history` stamps increasing times in list order.
import type { HistoryEvent, ReadMessage } from '../src/checker/index.js';
import { anomalyKinds, type AnomalyKind, type CheckReport } from '../src/checker/index.js';

/** An event without its time (distributes over the union so each variant keeps its shape). */
export type Step = HistoryEvent extends infer E ? (E extends HistoryEvent ? Omit<E, 'time'> : never) : never;

export function history(...steps: (Step | Step[])[]): HistoryEvent[] {
  return steps.flat().map((step, i) => ({ ...step, time: i * 10 }) as HistoryEvent);
}

export const sendInvoke = (process: number, queue: string, body: string): Step => ({ type: 'invoke', process, f: 'send', value: { queue, body } });
/** `offset` null: an ack that named no offset (leader quorum). */
export const sendOk = (process: number, queue: string, body: string, offset: number | null): Step => ({
  type: 'ok', process, f: 'send', value: { queue, body, offset },
});
export const sendFail = (process: number, queue: string, body: string): Step => ({ type: 'fail', process, f: 'send', value: { queue, body } });
export const sendInfo = (process: number, queue: string, body: string): Step => ({ type: 'info', process, f: 'send', value: { queue, body } });

/** A whole ok send: invoke then ok at `offset`. */
export const send = (process: number, queue: string, body: string, offset: number | null): Step[] => [sendInvoke(process, queue, body), sendOk(process, queue, body, offset)];

function messagesOf(messages: [number, string][]): ReadMessage[] {
  return messages.map(([offset, body]) => ({ offset, body }));
}

export const pollInvoke = (process: number, queue: string, from?: number): Step => ({
  type: 'invoke', process, f: 'poll', value: from === undefined ? { queue } : { queue, from },
});
export const pollOk = (process: number, queue: string, messages: [number, string][]): Step => ({
  type: 'ok', process, f: 'poll', value: { queue, messages: messagesOf(messages) },
});
/** A whole ok poll. */
export const poll = (process: number, queue: string, messages: [number, string][], from?: number): Step[] => [
  pollInvoke(process, queue, from),
  pollOk(process, queue, messages),
];
/** A whole ok drain; `minOffset`: where it began (retention deleted what lies below). */
export const drain = (process: number, queue: string, messages: [number, string][], minOffset?: number): Step[] => [
  { type: 'invoke', process, f: 'drain', value: { queue } },
  { type: 'ok', process, f: 'drain', value: minOffset === undefined ? { queue, messages: messagesOf(messages) } : { queue, messages: messagesOf(messages), minOffset } },
];

/** The anomaly kinds the report counted at least once. */
export function foundKinds(report: CheckReport): AnomalyKind[] {
  return anomalyKinds.filter((kind) => report.counts[kind] > 0);
}
