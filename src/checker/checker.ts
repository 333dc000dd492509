// The checker's entry points: history in, report out, as a pure function of the events.
// Validation (history.ts shape, pairing.ts structure) runs first on every event, then the
// event feeds the shared indexes; the anomaly functions run once at the end. A malformed
// history throws LmqError LMQ_BAD_INPUT; a bug throws InvariantViolation — neither ever
// yields a report, so a crash can never read as "valid".
import { assert } from '../util/assert.js';
import { parseHistoryEvent, readHistoryFile, type EventPosition, type HistoryEvent } from './history.js';
import { IndexBuilder } from './indexes.js';
import { OperationPairer } from './pairing.js';
import { buildReport, type CheckReport } from './report.js';

/** Incremental checker: feed events in history order with `add`, then call `finish` once. */
export class HistoryChecker {
  private readonly pairer = new OperationPairer();
  private readonly builder = new IndexBuilder();
  private finished = false;

  /** Validates and indexes one event. `at` names it in errors. Throws LMQ_BAD_INPUT. */
  add(event: HistoryEvent, at: EventPosition): void {
    assert(!this.finished, 'no events after finish');
    const step = this.pairer.accept(event, at);
    if (step.kind === 'invoke') this.builder.invoked(step.operation);
    else this.builder.completed(step.operation);
  }

  finish(): CheckReport {
    assert(!this.finished, 'finish once');
    this.finished = true;
    for (const operation of this.pairer.finish()) this.builder.completed(operation);
    return buildReport(this.builder.finish(this.pairer.eventCount));
  }
}

/**
 * Checks an in-memory history (e.g. the chaos runner's). Every event is shape-validated as if
 * read from a file, so untyped callers get the same errors; line N is the N-th event.
 */
export function checkHistory(events: Iterable<HistoryEvent>, source = 'history'): CheckReport {
  const checker = new HistoryChecker();
  let line = 0;
  for (const event of events) {
    line += 1;
    const at = { source, line };
    checker.add(parseHistoryEvent(event, at), at);
  }
  return checker.finish();
}

/** Checks a JSON Lines history file, streamed line by line (memory bounded by the indexes). */
export async function checkHistoryFile(path: string): Promise<CheckReport> {
  const checker = new HistoryChecker();
  for await (const { event, at } of readHistoryFile(path)) checker.add(event, at);
  return checker.finish();
}
