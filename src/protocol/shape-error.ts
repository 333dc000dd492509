// The error every check of a binary or msgpack shape throws (byte-codec.ts, the broker's
// command codecs): its message names the field, and each caller turns it into the error its
// side reports (LMQ_BAD_INPUT for what a client sent, LMQ_CORRUPT_DATA for what was stored).

export class ShapeError extends Error {}

export function fail(message: string): never {
  throw new ShapeError(message);
}

/** A problem found inside a part, with the part's path in front (encoders build no path unless one fails); other errors as they are. */
export function prefixed(error: unknown, what: string): unknown {
  return error instanceof ShapeError ? new ShapeError(`${what}${error.message}`) : error;
}
