// Log lines that hostile or broken clients can trigger at any rate (refused connections, bad
// frames, timeouts), written at most once per reason per interval: 1,024 idle connections
// once produced 8,978 warning lines. The next line of a reason carries how many were
// suppressed since the last one, so nothing is hidden, only counted.
import type { Logger } from 'pino';
import { assert } from './assert.js';

interface ReasonState {
  lastLoggedMs: number;
  suppressed: number;
}

export class RateLimitedLog {
  private readonly reasons = new Map<string, ReasonState>();

  /** `nowMs` is a monotonic clock (injectable for tests). */
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    assert(Number.isFinite(intervalMs) && intervalMs >= 0, 'intervalMs >= 0');
  }

  warn(reason: string, fields: Readonly<Record<string, unknown>>, message: string): void {
    this.write('warn', reason, fields, message);
  }

  info(reason: string, fields: Readonly<Record<string, unknown>>, message: string): void {
    this.write('info', reason, fields, message);
  }

  /** Lines suppressed for `reason` since its last line (for tests and status). */
  suppressedCount(reason: string): number {
    return this.reasons.get(reason)?.suppressed ?? 0;
  }

  private write(level: 'warn' | 'info', reason: string, fields: Readonly<Record<string, unknown>>, message: string): void {
    const now = this.nowMs();
    const state = this.reasons.get(reason);
    if (state !== undefined && now - state.lastLoggedMs < this.intervalMs) {
      state.suppressed += 1;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    const sinceMs = state === undefined ? 0 : Math.round(now - state.lastLoggedMs);
    this.reasons.set(reason, { lastLoggedMs: now, suppressed: 0 });
    // Reasons are a fixed set chosen by the caller (never client input), so the map stays small.
    assert(this.reasons.size <= 64, 'rate-limited log reasons are a small fixed set');
    this.logger[level]({ ...fields, reason, ...(suppressed > 0 ? { suppressed, suppressedOverMs: sinceMs } : {}) }, message);
  }
}
