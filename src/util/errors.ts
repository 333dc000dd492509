// The catalogue of errors a user, a client or a test can act on. Each has a stable code,
// says whether retrying can help, and whether the outcome is unknown (the operation may or
// may not have happened — the checker records those as `info`, never as `fail`).
// `LmqError.indeterminate` is the one thing the client, the CLI and the chaos recorder read to
// tell the two apart. docs/errors.md documents every code; test/errors-doc.test.ts keeps it
// in step with ERROR_TRAITS.

export type ErrorCode =
  | 'LMQ_BAD_CONFIG'
  | 'LMQ_BAD_INPUT'
  | 'LMQ_NOT_LEADER'
  | 'LMQ_UNAVAILABLE'
  | 'LMQ_TIMEOUT'
  | 'LMQ_CORRUPT_DATA'
  | 'LMQ_TOPIC_NOT_FOUND'
  | 'LMQ_TOPIC_EXISTS'
  | 'LMQ_LEADERSHIP_LOST'
  | 'LMQ_OVERLOADED'
  | 'LMQ_OUT_OF_ORDER'
  | 'LMQ_DISK_FULL'
  | 'LMQ_UNAUTHENTICATED'
  | 'LMQ_FORBIDDEN'
  | 'LMQ_RECEIPT_EXPIRED'
  | 'LMQ_TX_ENDED'
  | 'LMQ_ROUTE_CHANGED'
  | 'LMQ_TRANSFER_FAILED';

interface ErrorTraits {
  retriable: boolean;
  /**
   * The operation may or may not have happened. An error raised where it is known that nothing
   * was carried out (e.g. the connection could not be made) says so with `sent: false` in its
   * details, which makes it determinate whatever its code; the field travels with the error.
   */
  indeterminate: boolean;
  /** Process exit code when this error ends a CLI command (CONTRACT.md). */
  exitCode: 1 | 2 | 3;
}

export const ERROR_TRAITS: Readonly<Record<ErrorCode, ErrorTraits>> = Object.freeze({
  LMQ_BAD_CONFIG: { retriable: false, indeterminate: false, exitCode: 2 },
  LMQ_BAD_INPUT: { retriable: false, indeterminate: false, exitCode: 2 },
  LMQ_NOT_LEADER: { retriable: true, indeterminate: false, exitCode: 3 },
  LMQ_UNAVAILABLE: { retriable: true, indeterminate: true, exitCode: 3 },
  LMQ_TIMEOUT: { retriable: true, indeterminate: true, exitCode: 3 },
  LMQ_CORRUPT_DATA: { retriable: false, indeterminate: false, exitCode: 1 },
  LMQ_TOPIC_NOT_FOUND: { retriable: false, indeterminate: false, exitCode: 2 },
  LMQ_TOPIC_EXISTS: { retriable: false, indeterminate: false, exitCode: 2 },
  LMQ_LEADERSHIP_LOST: { retriable: true, indeterminate: true, exitCode: 3 },
  LMQ_OVERLOADED: { retriable: true, indeterminate: false, exitCode: 3 },
  // An idempotent producer's seq skipped ahead (an earlier send is missing): this send was
  // definitely not stored; the producer resends in order from the expected seq.
  LMQ_OUT_OF_ORDER: { retriable: true, indeterminate: false, exitCode: 3 },
  // The node's disk has no room for the next log segment: the node stops (exit 1) with one line.
  LMQ_DISK_FULL: { retriable: false, indeterminate: false, exitCode: 1 },
  // Refused before anything was carried out: the request's signature did not prove a user of
  // the node's ACL (missing, wrong, stale or replayed), or the user lacks the permission.
  LMQ_UNAUTHENTICATED: { retriable: false, indeterminate: false, exitCode: 2 },
  LMQ_FORBIDDEN: { retriable: false, indeterminate: false, exitCode: 2 },
  // A simple consumer's receipt names a delivery that is over: the message was delivered again
  // since (its invisible duration ran out, or its duration was changed), or is no longer in
  // flight. Decided at apply, so the answer is determinate: nothing was changed.
  LMQ_RECEIPT_EXPIRED: { retriable: false, indeterminate: false, exitCode: 2 },
  // A transaction's end came too late: it had already ended the other way (a check-back answer
  // or the leader's rollback after transaction.maxChecks was applied first). Decided, final.
  LMQ_TX_ENDED: { retriable: false, indeterminate: false, exitCode: 1 },
  // A produce routed over a queue count the topic no longer has (it grew meanwhile): nothing
  // was stored; the producer learns the new route and sends again (producer.ts). Not retried
  // by the client as is: the same request would be refused again.
  LMQ_ROUTE_CHANGED: { retriable: false, indeterminate: false, exitCode: 3 },
  // `leader transfer` could not move leadership: the target was down, did not catch up within
  // an election timeout, or another node won. The leader cancelled the transfer; it still leads
  // unless `details.leader` names another node.
  LMQ_TRANSFER_FAILED: { retriable: false, indeterminate: false, exitCode: 1 },
});

export class LmqError extends Error {
  override name = 'LmqError';
  readonly retriable: boolean;
  readonly indeterminate: boolean;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.retriable = ERROR_TRAITS[code].retriable;
    this.indeterminate = ERROR_TRAITS[code].indeterminate && details['sent'] !== false;
  }

  get exitCode(): 1 | 2 | 3 {
    return ERROR_TRAITS[this.code].exitCode;
  }
}

/** Details that mark an error as raised before anything that could take effect was sent. */
export const NOT_SENT = Object.freeze({ sent: false });

export function isLmqError(error: unknown, code?: ErrorCode): error is LmqError {
  return error instanceof LmqError && (code === undefined || error.code === code);
}
