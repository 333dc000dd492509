// The produce entry codec alone (`npm run bench:produce-codec [ROUNDS]`): nanoseconds per
// message to encode a produce as the leader does (validate, then the binary form, format 2)
// beside msgpackr packing the same command (format 1's encoder, before validation), and to
// decode each form (format 1 is what logs written before the binary form hold). Produces of 1
// and of 32 messages of 128 B, msgIds as the native producer names them. Prints the medians.
import { Packr } from 'msgpackr';
import { COMMAND_FORMAT_VERSION, decodeCommand, encodeProduce, type ProduceCommand } from '../src/broker/commands.js';
import { countArgument, median } from './script.js';

const ROUNDS = countArgument(2, 'ROUNDS', 5);
const PRODUCES = 2000;
const MESSAGES_PER_ROUND = 64_000;
const BODY_BYTES = 128;
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

function produceOf(messages: number, seq: number): ProduceCommand {
  const session = 'a1b2c3d4e5f60718';
  return {
    kind: 'produce', producerId: session, seq, timestampMs: 1_764_780_000_000 + seq, routedQueues: 8,
    messages: Array.from({ length: messages }, (_, i) => ({ msgId: `${session}-${seq}${messages > 1 ? `.${i}` : ''}`, topic: 'bench', queueId: seq % 8, body: new Uint8Array(BODY_BYTES).fill(i) })),
  };
}

function msgpackForm(command: ProduceCommand): Uint8Array {
  const payload = packr.pack(command);
  const data = new Uint8Array(1 + payload.byteLength);
  data[0] = COMMAND_FORMAT_VERSION;
  data.set(payload, 1);
  return data;
}

/** ns per message of `run` over every item, repeated to MESSAGES_PER_ROUND messages. */
function timed<T>(items: readonly T[], messagesPerItem: number, run: (item: T) => unknown): number {
  const repeats = Math.max(1, Math.round(MESSAGES_PER_ROUND / (items.length * messagesPerItem)));
  const start = process.hrtime.bigint();
  for (let r = 0; r < repeats; r++) for (const item of items) run(item);
  return Number(process.hrtime.bigint() - start) / (repeats * items.length * messagesPerItem);
}

for (const messages of [1, 32]) {
  const produces = Array.from({ length: PRODUCES }, (_, i) => produceOf(messages, i + 1));
  const msgpack = produces.map(msgpackForm);
  const binary = produces.map((produce) => encodeProduce(produce).data);
  const rounds = { packOnly: [] as number[], encode: [] as number[], decodeMsgpack: [] as number[], decodeBinary: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    rounds.packOnly.push(timed(produces, messages, msgpackForm));
    rounds.encode.push(timed(produces, messages, encodeProduce));
    rounds.decodeMsgpack.push(timed(msgpack, messages, (data) => decodeCommand(data)));
    rounds.decodeBinary.push(timed(binary, messages, (data) => decodeCommand(data)));
  }
  const ns = (values: number[]) => `${Math.round(median(values))} ns`;
  console.log(
    `${messages} message(s) a produce, per message: encode ${ns(rounds.encode)} (msgpackr pack alone ${ns(rounds.packOnly)}); ` +
      `decode binary ${ns(rounds.decodeBinary)}, msgpack ${ns(rounds.decodeMsgpack)}; ` +
      `entry ${binary[0]!.byteLength} B binary, ${msgpack[0]!.byteLength} B msgpack`,
  );
}
