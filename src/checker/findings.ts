// What every anomaly finder returns and how it gathers it: a count and the first few examples,
// each naming the operations (line, process, time) so a person can find them in the history.
import { assert } from '../util/assert.js';
import type { OpRef } from './pairing.js';

/** Examples kept per anomaly kind; the count covers them all. */
export const examplesPerAnomalyMax = 5;

export interface AnomalyExample {
  /** One line a person reads; the other fields carry the same facts for machines. */
  description: string;
  [field: string]: unknown;
}

export interface AnomalyResult {
  count: number;
  examples: AnomalyExample[];
}

export class Findings {
  count = 0;
  readonly examples: AnomalyExample[] = [];

  /** Counts one occurrence; builds its example only while fewer than the maximum are kept. */
  add(example: () => AnomalyExample): void {
    this.count += 1;
    if (this.examples.length < examplesPerAnomalyMax) this.examples.push(example());
  }

  result(): AnomalyResult {
    assert(this.examples.length <= this.count, 'no more examples than occurrences');
    assert(this.examples.length <= examplesPerAnomalyMax, 'examples are bounded');
    return { count: this.count, examples: this.examples };
  }
}

export function describeOp(ref: OpRef): string {
  return `${ref.f} ${ref.type} by process ${ref.process} at line ${ref.line} (time ${ref.time})`;
}

export function quote(body: string): string {
  return JSON.stringify(body);
}

