// Invariant assertions (TigerBeetle style). They stay on in production: a broken invariant
// means the node's state can no longer be trusted, so the process must crash loudly rather
// than serve wrong data. Never catch InvariantViolation.

export class InvariantViolation extends Error {
  override name = 'InvariantViolation';
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new InvariantViolation(typeof message === 'function' ? message() : message);
  }
}

/** Marks a switch as exhaustive: the compiler proves `value` is never, the assertion proves it at run time. */
export function unreachable(value: never, what: string): never {
  throw new InvariantViolation(`unreachable ${what}: ${JSON.stringify(value)}`);
}
