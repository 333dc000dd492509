// Child process for the broker recovery test: applies a deterministic workload in batches and
// reports on stdout each batch it starts and each it has applied, until the parent kills it with
// SIGKILL. Writes to a pipe are synchronous on Linux, so every report made before the kill reaches
// the parent.
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import { applyRange, MemoryLog, workload } from './broker-helpers.js';

const [dir, seedText, countText, batchText, bufferedText] = process.argv.slice(2);
const log = new MemoryLog();
for (const command of workload(Number(seedText), Number(countText))) log.append(command);
const machine = BrokerStateMachine.open({ dir: dir as string, log, maxBufferedRecords: Number(bufferedText) });
const batchEntries = Number(batchText);
for (let lo = machine.appliedIndex() + 1; lo <= log.all().length; lo += batchEntries) {
  const hi = Math.min(lo + batchEntries - 1, log.all().length);
  process.stdout.write(`applying ${hi}\n`);
  applyRange(machine, log, lo, hi, batchEntries);
  process.stdout.write(`applied ${machine.appliedIndex()}\n`);
}
process.stdout.write('done\n');
setInterval(() => {}, 1000); // wait to be killed: the parent decides when the crash happens
