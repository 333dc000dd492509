// The client port's request check, at the edge: anything that is not a request of the protocol
// (src/protocol) is LMQ_BAD_INPUT with the offending field named, never a crash.
import { isPlainObject, isText, LIMITS, onlyKeysFrom, produceMessagePassesFastCheck, type Request, requestSchema, type RequestOf, totalBodyBytes } from '../protocol/index.js';
import { LmqError } from '../util/errors.js';

export function parseRequest(body: unknown): Request {
  return producePassesFastCheck(body) ? body : parseWithSchema(body);
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
const PRODUCE_KEYS: ReadonlySet<string> = new Set(['op', 'producerId', 'seq', 'messages', 'routedQueues']);

function producePassesFastCheck(body: unknown): body is RequestOf<'produce'> {
  if (!isPlainObject(body) || body.op !== 'produce' || !onlyKeysFrom(body, PRODUCE_KEYS)) return false;
  const { producerId, seq, messages, routedQueues } = body;
  if (!isText(producerId, LIMITS.maxIdLength)) return false;
  if (routedQueues !== undefined && (typeof routedQueues !== 'number' || !Number.isSafeInteger(routedQueues) || routedQueues < 1 || routedQueues > LIMITS.maxQueuesPerTopic)) return false;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return false;
  if (!Array.isArray(messages) || messages.length < 1 || messages.length > LIMITS.maxMessagesPerProduce) return false;
  // Index loops, not every(): every() skips the holes of a sparse array, which zod refuses.
  for (let i = 0; i < messages.length; i++) if (!produceMessagePassesFastCheck(messages[i])) return false;
  return totalBodyBytes(messages as { body: Uint8Array }[]) <= LIMITS.maxProduceBodyBytes;
}
