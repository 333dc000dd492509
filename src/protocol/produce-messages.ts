// The binary form of a produce's messages, which the client port and the commit log share: a
// produce request may carry its messages so (`encoded`, requests.ts) instead of as msgpack
// maps, and the leader then copies those bytes into the produce entry it proposes
// (src/broker/produce-codec.ts) where it would decode the maps, check them and encode the
// entry's messages again — the most of a produce's cost on the leader that grows with its
// messages. The leader still decodes and checks the bytes (the decoder refuses anything that
// would not re-encode to the same bytes), so a copy is what encoding would have written.
// Kafka's producers send their record batches in the log's format for the same reason.
//
// Layout (uint, str and bytes as byte-codec.ts writes them):
//   messages = count:uint message{count}
//   message  = flags:u8 msgId:str topic:str queueId:uint body:bytes, then as flags say (1 tag,
//              2 keys, 4 properties, 8 deliverAtMs): tag:str, keys: count:uint str{count},
//              properties: count:uint (name:str value:str){count}, deliverAtMs:uint
import { putBytes, putStr, putU8, putUint, startWriting, takeWritten } from './byte-codec.js';
import { fail, prefixed } from './shape-error.js';

export const TAG_FLAG = 1;
export const KEYS_FLAG = 2;
export const PROPERTIES_FLAG = 4;
export const DELIVER_AT_FLAG = 8;
export const KNOWN_MESSAGE_FLAGS = TAG_FLAG | KEYS_FLAG | PROPERTIES_FLAG | DELIVER_AT_FLAG;

/** What the binary form carries of a message (a produce request's message, or a produce command's). */
export interface EncodableMessage {
  readonly msgId: string;
  readonly topic: string;
  readonly queueId: number;
  readonly body: Uint8Array;
  readonly tag?: string | undefined;
  readonly keys?: readonly string[] | undefined;
  readonly properties?: Readonly<Record<string, string>> | undefined;
  readonly deliverAtMs?: number | undefined;
}

/** `messages` in their binary form (a produce request's `encoded`). Throws ShapeError for a string UTF-8 cannot carry. */
export function encodeProduceMessages(messages: readonly EncodableMessage[]): Uint8Array {
  startWriting();
  putUint(messages.length);
  for (let i = 0; i < messages.length; i++) {
    try {
      putProduceMessage(messages[i]!);
    } catch (error) {
      throw prefixed(error, `messages[${i}].`);
    }
  }
  return takeWritten();
}

/** One message into the encoding under way (byte-codec.ts startWriting). A problem names the field from the message on ("msgId holds…"). */
export function putProduceMessage(message: EncodableMessage): void {
  const flags =
    (message.tag === undefined ? 0 : TAG_FLAG) |
    (message.keys === undefined ? 0 : KEYS_FLAG) |
    (message.properties === undefined ? 0 : PROPERTIES_FLAG) |
    (message.deliverAtMs === undefined ? 0 : DELIVER_AT_FLAG);
  putU8(flags);
  putText(message.msgId, 'msgId');
  putText(message.topic, 'topic');
  putUint(message.queueId);
  putBytes(message.body);
  if (message.tag !== undefined) putText(message.tag, 'tag');
  if (message.keys !== undefined) {
    putUint(message.keys.length);
    for (const key of message.keys) putText(key, 'keys');
  }
  if (message.properties !== undefined) {
    const entries = Object.entries(message.properties);
    putUint(entries.length);
    for (const [name, value] of entries) {
      putText(name, 'properties');
      putText(value, 'properties');
    }
  }
  if (message.deliverAtMs !== undefined) putUint(message.deliverAtMs);
}

/** A str, refused when it is not well-formed Unicode, which UTF-8 cannot carry unchanged. */
export function putText(value: string, what: string): void {
  if (!value.isWellFormed()) fail(`${what} holds a lone surrogate, which is not Unicode text`);
  putStr(value);
}
