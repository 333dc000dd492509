// Log lines that hostile or broken clients can trigger at any rate (refused connections, bad
// frames, timeouts), written at most once per reason per interval: 1,024 idle connections
// once produced 8,978 warning lines. What is suppressed is counted, never hidden: when the
// interval ends with lines suppressed, one more line says how many (with the last one's fields).
import type { Logger } from 'pino';
import { assert } from './assert.js';

type Level = 'warn' | 'info';

interface ReasonState {
  /** When the current interval began (its first line). */
  lastLoggedMs: number;
  /** Lines written in the current interval. */
  lines: number;
  suppressed: number;
  /** The last suppressed line, written with the count when the interval ends. */
  last: { level: Level; fields: Readonly<Record<string, unknown>>; message: string } | null;
  timer: NodeJS.Timeout | null;
}

/** Reasons are a fixed set chosen by the caller (never client input), so the map stays small. */
const MAX_REASONS = 64;

export class RateLimitedLog {
  private readonly reasons = new Map<string, ReasonState>();

  /**
   * `maxLinesPerInterval` lines per reason per interval are written. `nowMs` is a monotonic
   * clock (injectable for tests); the end-of-interval line runs on a real timer.
   */
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly nowMs: () => number = () => performance.now(),
    private readonly maxLinesPerInterval = 1,
  ) {
    assert(Number.isFinite(intervalMs) && intervalMs >= 0, 'intervalMs >= 0');
    assert(Number.isSafeInteger(maxLinesPerInterval) && maxLinesPerInterval >= 1, 'maxLinesPerInterval >= 1');
  }

  warn(reason: string, fields: Readonly<Record<string, unknown>>, message: string): void {
    this.write('warn', reason, fields, message);
  }

  info(reason: string, fields: Readonly<Record<string, unknown>>, message: string): void {
    this.write('info', reason, fields, message);
  }

  /** Lines suppressed for `reason` since its last line. */
  suppressedCount(reason: string): number {
    return this.reasons.get(reason)?.suppressed ?? 0;
  }

  /** Writes the pending counts now and stops the timers (e.g. when the server closes). */
  flush(): void {
    for (const reason of this.reasons.keys()) this.writeSuppressed(reason);
  }

  private write(level: Level, reason: string, fields: Readonly<Record<string, unknown>>, message: string): void {
    const now = this.nowMs();
    const state = this.reasons.get(reason);
    if (state !== undefined && now - state.lastLoggedMs < this.intervalMs && state.lines < this.maxLinesPerInterval) {
      state.lines += 1;
      this.logger[level]({ reason, ...fields }, message);
      return;
    }
    if (state !== undefined && now - state.lastLoggedMs < this.intervalMs) {
      state.suppressed += 1;
      state.last = { level, fields, message };
      if (state.timer === null) {
        state.timer = setTimeout(() => this.writeSuppressed(reason), Math.max(0, state.lastLoggedMs + this.intervalMs - now));
        state.timer.unref();
      }
      return;
    }
    if (state !== undefined) this.writeSuppressed(reason);
    this.reasons.set(reason, { lastLoggedMs: this.nowMs(), lines: 1, suppressed: 0, last: null, timer: null });
    assert(this.reasons.size <= MAX_REASONS, 'rate-limited log reasons are a small fixed set');
    // A caller's own `reason` field (a detailed one) wins over the key.
    this.logger[level]({ reason, ...fields }, message);
  }

  /** One line for the lines suppressed since `reason`'s last line, if any; starts a new interval. */
  private writeSuppressed(reason: string): void {
    const state = this.reasons.get(reason);
    assert(state !== undefined, 'only known reasons have suppressed lines');
    if (state.timer !== null) clearTimeout(state.timer);
    state.timer = null;
    if (state.suppressed === 0 || state.last === null) return;
    const now = this.nowMs();
    const { level, fields, message } = state.last;
    this.logger[level]({ reason, ...fields, suppressed: state.suppressed, suppressedOverMs: Math.round(now - state.lastLoggedMs) }, `${message} (${state.suppressed} more like it suppressed)`);
    state.lastLoggedMs = now;
    state.lines = 1;
    state.suppressed = 0;
    state.last = null;
  }
}
