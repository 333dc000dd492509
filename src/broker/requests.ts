// The client port's request check, at the edge: anything that is not a request of the protocol
// (src/protocol) is LMQ_BAD_INPUT with the offending field named, never a crash.
import { isPlainObject, isText, LIMITS, onlyKeysFrom, produceMessagePassesFastCheck, type ProduceMessageWire, type Request, requestSchema, type RequestOf, totalBodyBytes } from '../protocol/index.js';
import { ShapeError } from '../protocol/shape-error.js';
import { LmqError } from '../util/errors.js';
import { decodeProduceMessages } from './produce-codec.js';

export function parseRequest(body: unknown): Request {
  if (isPlainObject(body) && body.op === 'produce' && body.encoded !== undefined) return parseEncodedProduce(body);
  return producePassesFastCheck(body) ? body : parseWithSchema(body);
}

/**
 * A produce that came with its messages encoded (EncodedProduceRequest), as the produce request
 * it stands for: `messages` decoded from `encoded`, which it keeps for the leader to copy into
 * the entry. The decoder checks each message as the schema does (the same limits and rules,
 * test/broker-requests.test.ts), so only the fields around them are checked here. Sending both
 * would let the two disagree: refused.
 */
function parseEncodedProduce(body: Record<string, unknown>): Request {
  if (body.messages !== undefined) throw new LmqError('LMQ_BAD_INPUT', 'bad request: a produce carries messages or encoded, not both');
  const { encoded } = body;
  if (!(encoded instanceof Uint8Array)) throw new LmqError('LMQ_BAD_INPUT', 'bad request: encoded: must be binary');
  let messages: ProduceMessageWire[];
  try {
    messages = decodeProduceMessages(encoded);
  } catch (error) {
    if (error instanceof ShapeError) throw new LmqError('LMQ_BAD_INPUT', `bad request: encoded: ${error.message}`);
    throw error;
  }
  if (!produceEnvelopePassesFastCheck(body)) return parseWithSchema({ ...body, messages });
  const { producerId, seq, routedQueues } = body as { producerId: string; seq: number; routedQueues?: number };
  return routedQueues === undefined ? { op: 'produce', producerId, seq, messages, encoded } : { op: 'produce', producerId, seq, messages, encoded, routedQueues };
}

/** The schema's verdict alone (what the fast check must agree with; tests compare the two). */
export function parseWithSchema(body: unknown): Request {
  const result = requestSchema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? 'request' : issue.path.join('.');
  throw new LmqError('LMQ_BAD_INPUT', `bad request: ${where}: ${issue?.message ?? 'invalid'}`);
}

// Produce is the hot request (see produceMessagePassesFastCheck): this hand check accepts only
// produces the schema accepts too; everything else goes through zod.
const PRODUCE_KEYS: ReadonlySet<string> = new Set(['op', 'producerId', 'seq', 'messages', 'routedQueues', 'encoded']);

function producePassesFastCheck(body: unknown): body is RequestOf<'produce'> {
  if (!isPlainObject(body) || body.op !== 'produce' || !produceEnvelopePassesFastCheck(body)) return false;
  const { messages } = body;
  if (!Array.isArray(messages) || messages.length < 1 || messages.length > LIMITS.maxMessagesPerProduce) return false;
  // Index loops, not every(): every() skips the holes of a sparse array, which zod refuses.
  for (let i = 0; i < messages.length; i++) if (!produceMessagePassesFastCheck(messages[i])) return false;
  return totalBodyBytes(messages as { body: Uint8Array }[]) <= LIMITS.maxProduceBodyBytes;
}

/** A produce's fields but its messages, as the schema would accept them. */
function produceEnvelopePassesFastCheck(body: Record<string, unknown>): boolean {
  if (!onlyKeysFrom(body, PRODUCE_KEYS)) return false;
  const { producerId, seq, routedQueues } = body;
  if (!isText(producerId, LIMITS.maxIdLength)) return false;
  if (routedQueues !== undefined && (typeof routedQueues !== 'number' || !Number.isSafeInteger(routedQueues) || routedQueues < 1 || routedQueues > LIMITS.maxQueuesPerTopic)) return false;
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 1;
}
