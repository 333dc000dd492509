// A simple consumer's receipt handle (RocketMQ 5's receiptHandle): the string a receive hands
// out with each message and an ack or changeInvisibleDuration names it by. It is opaque to the
// client; the broker reads the message's queue position and the delivery's tag (the log index
// of the command that handed it out, src/broker/simple-consumer.ts) back from it. ":" is in no
// topic name (NAME_PATTERN), so the four fields split unambiguously.
import { isName, isQueueId, LIMITS } from './limits.js';

export interface ReceiptRef {
  /** The queue's topic: the subscribed topic, or the group's %RETRY%<group>. */
  readonly topic: string;
  readonly queueId: number;
  readonly offset: number;
  /** Which delivery of the message: the log index of the receive (or change) that made it. */
  readonly tag: number;
}

const RECEIPT_VERSION = 'r1';

export function formatReceipt(ref: ReceiptRef): string {
  return `${RECEIPT_VERSION}:${ref.topic}:${ref.queueId}:${ref.offset}:${ref.tag}`;
}

/** The receipt's fields, or undefined when it is not a receipt this broker hands out. */
export function parseReceipt(receipt: string): ReceiptRef | undefined {
  if (receipt.length > LIMITS.maxReceiptLength) return undefined;
  const parts = receipt.split(':');
  if (parts.length !== 5 || parts[0] !== RECEIPT_VERSION) return undefined;
  const [, topic, queueText, offsetText, tagText] = parts as [string, string, string, string, string];
  const [queueId, offset, tag] = [queueText, offsetText, tagText].map((text) => (/^\d{1,16}$/.test(text) ? Number(text) : Number.NaN)) as [number, number, number];
  if (!isName(topic) || !isQueueId(queueId) || !Number.isSafeInteger(offset) || !Number.isSafeInteger(tag) || tag < 1) return undefined;
  return { topic, queueId, offset, tag };
}
