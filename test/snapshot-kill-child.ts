// Child process for the snapshot kill test: writes snapshot 10 and reports it durable, then
// starts snapshot 20, whose payload stops coming after some chunks were written, reports that,
// and waits for the parent's SIGKILL.
import { SnapshotStore, IO_CHUNK_BYTES } from '../src/log/snapshot-store.js';
import { payloadOf } from './snapshot-helpers.js';

const [dir] = process.argv.slice(2);
const store = await SnapshotStore.open({ dir: dir! });
await store.write({ index: 10, term: 2 }, [payloadOf(10, 300_000)]);
process.stdout.write('durable 10\n');

async function* stalledPayload(): AsyncGenerator<Uint8Array> {
  for (let chunk = 0; chunk < 3; chunk++) yield payloadOf(20 + chunk, IO_CHUNK_BYTES);
  // The store asks for the fourth chunk only after writing the third.
  process.stdout.write('writing 20\n');
  await new Promise(() => {});
}
void store.write({ index: 20, term: 3 }, stalledPayload());
setInterval(() => {}, 1000); // wait to be killed
