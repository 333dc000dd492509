// The shape checks the broker's command codecs share (commands.ts for msgpack, produce-codec.ts
// for the binary produce form): a failed check throws ShapeError with a message naming the
// field, which each codec turns into LMQ_BAD_INPUT at encode or LMQ_CORRUPT_DATA at decode.
import { CONTROL_CHARACTER, LIMITS, NAME_PATTERN, NAME_RULE } from '../protocol/index.js';
import { fail, ShapeError } from '../protocol/shape-error.js';
import { MAX_ACCESS_KEY_LENGTH } from '../security/signature.js';

/** A producerId or lock clientId in a command: the client's, or under an ACL `<accessKey>/<id>` (service.ts). */
export const MAX_SCOPED_PRODUCER_ID_LENGTH = MAX_ACCESS_KEY_LENGTH + 1 + LIMITS.maxIdLength;

/** Validation throws ShapeError; this turns it into a message, leaving other errors alone. */
export function validationProblem(check: () => void): string | undefined {
  const result = valueOrProblem(() => {
    check();
    return {};
  });
  return typeof result === 'string' ? result : undefined;
}

/** What `run` returns, or the message of the ShapeError it throws (other errors go on). */
export function valueOrProblem<T extends object>(run: () => T): T | string {
  try {
    return run();
  } catch (error) {
    if (error instanceof ShapeError) return error.message;
    throw error;
  }
}

export function checkBodyBytes(bodyBytes: number): void {
  if (bodyBytes > LIMITS.maxProduceBodyBytes) {
    fail(`bodies total ${bodyBytes} bytes, more than maxProduceBodyBytes ${LIMITS.maxProduceBodyBytes}`);
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

export function onlyKeys(raw: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) fail(`${what} has unknown field ${JSON.stringify(key).slice(0, 40)}`);
  }
}

export function checkName(value: unknown, what: string): string {
  if (typeof value !== 'string') fail(`${what} must be a string`);
  if (value.length < 1 || value.length > LIMITS.maxNameLength) {
    fail(`${what} must be 1 to ${LIMITS.maxNameLength} characters long`);
  }
  if (!NAME_PATTERN.test(value)) fail(`${what} "${value}" ${NAME_RULE}`);
  return value;
}

export function checkText(value: unknown, what: string, maxLength: number): string {
  if (typeof value !== 'string') fail(`${what} must be a string`);
  if (value.length < 1 || value.length > maxLength) fail(`${what} must be 1 to ${maxLength} characters long`);
  if (CONTROL_CHARACTER.test(value)) fail(`${what} must not contain control characters`);
  return value;
}

export function checkInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(`${what} must be a whole number`);
  if (value < min || value > max) fail(`${what} must be from ${min} to ${max}, not ${value}`);
  // -0 passes as a whole number but msgpack writes it as 0: the clean copy must be what every
  // node decodes (the leader applies its own copy, state-machine.ts rememberProposal).
  return value === 0 ? 0 : value;
}
