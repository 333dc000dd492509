// Warnings that hostile traffic can trigger at will (a refused connection, a bad frame) go
// through here, so an attacker cannot fill the disk or drown the log: at most
// `maxLinesPerWindow` lines per window, then one line saying how many were suppressed.
// No timer: the count is reported by the first line of a later window.

import type pino from 'pino';
import { assert } from './assert.js';

export class RateLimitedLog {
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private linesInWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly logger: pino.Logger,
    private readonly maxLinesPerWindow = 10,
    private readonly windowMs = 10_000,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    assert(Number.isInteger(maxLinesPerWindow) && maxLinesPerWindow >= 1, 'maxLinesPerWindow >= 1');
    assert(windowMs >= 1, 'windowMs >= 1');
  }

  warn(fields: Record<string, unknown>, message: string): void {
    const now = this.nowMs();
    if (now - this.windowStartMs >= this.windowMs) {
      if (this.suppressed > 0) this.logger.warn({ suppressed: this.suppressed, windowMs: this.windowMs }, 'similar warnings suppressed');
      this.windowStartMs = now;
      this.linesInWindow = 0;
      this.suppressed = 0;
    }
    if (this.linesInWindow < this.maxLinesPerWindow) {
      this.linesInWindow += 1;
      this.logger.warn(fields, message);
    } else {
      this.suppressed += 1;
    }
    assert(this.linesInWindow <= this.maxLinesPerWindow, 'lines per window within the bound');
  }
}
